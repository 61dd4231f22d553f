"""ai-proxy, the terminal step of a route with providers: which provider serves the model
(``provider_choice``), what it is sent (``upstream_request``), the crossing between
protocols (``translation``), its streamed answer as events (``events``) and what the call
cost (``tokens``); ``GET /v1/models`` (``models``)."""
