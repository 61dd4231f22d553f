"""The edge of the data plane: the ASGI adapter (``edge``), one call from route to usage
record (``call``, the only driver of a call), the canonical request target and Host
(``target``), request bodies' Content-Encoding (``body``), the request's facts
(``facts``), error answers in the client's dialect (``error_replies``), and the config
snapshot a call runs on (``snapshot``)."""
