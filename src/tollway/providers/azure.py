"""Azure OpenAI (Higress type ``azure``): the OpenAI protocol at per-deployment URLs
with an ``api-version`` query and the ``api-key`` header."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from tollway.config.schema import ProviderConfig
from tollway.errors import BadRequest
from tollway.providers.base import Endpoint, Provider, UnsupportedProvider
from tollway.upstream import Transport

DEFAULT_API_VERSION = "2024-10-21"
# The APIs a deployment answers (Azure OpenAI's inference APIs); every other one is the
# resource's (files, batches, the model list, the Responses API, whose body names the
# deployment as its model).
_DEPLOYMENT_APIS = ("/chat/completions", "/completions", "/embeddings", "/images/", "/audio/")
_DEPLOYMENT = re.compile(r"^(?P<prefix>.*?)/openai/deployments/(?P<deployment>[^/]+)(?P<api>/.*)?$")


class Azure(Provider):
    """``azureServiceUrl`` (or ``baseUrl``) in one of Higress's three forms:

    - full URL, ``https://R.openai.azure.com/openai/deployments/D/chat/completions?api-version=V``:
      deployment D, and V unless it is absent;
    - deployment base, ``https://R.openai.azure.com/openai/deployments/D``: deployment D;
    - resource only, ``https://R.openai.azure.com`` (a path there is kept as a prefix,
      for API gateways in front of Azure): the deployment is the upstream (mapped) model.

    Every call goes to ``<root>/openai/deployments/<deployment><api path>`` with
    ``api-version`` (the URL's, else ``apiVersion``, else 2024-10-21) replacing any the
    client sent. A root ending in ``/openai/v1`` is Azure's version-less v1 API and takes
    OpenAI paths as they are. Deployments cannot be listed on the data plane, so
    ``models_endpoint`` is None (the route lists its mapping keys).
    """

    protocol = "openai"

    def __init__(self, config: ProviderConfig, transport: Transport) -> None:
        url = config.azureServiceUrl or config.baseUrl or config.openaiCustomUrl
        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UnsupportedProvider("provider type 'azure' needs azureServiceUrl, an http(s) URL")
        in_url = dict(parse_qsl(parts.query)).get("api-version")
        path = parts.path.rstrip("/")
        found = _DEPLOYMENT.match(path)
        self.deployment = found["deployment"] if found else None
        self.v1 = found is None and path.endswith("/openai/v1")
        root = f"{parts.scheme}://{parts.netloc}{found['prefix'] if found else path}"
        self.api_version: str | None = in_url or config.apiVersion or (None if self.v1 else DEFAULT_API_VERSION)
        super().__init__(config, transport, base_url=root)

    def auth_headers(self, token: str | None) -> tuple[tuple[str, str], ...]:
        return (("api-key", token),) if token else ()

    def _query(self, query: str) -> str:
        pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "api-version"]
        if self.api_version:
            pairs.append(("api-version", self.api_version))
        return urlencode(pairs)

    def endpoint(self, api_path: str, query: str, token: str | None, model: str | None = None) -> Endpoint:
        """An inference API's call goes to its deployment (the service URL's, else the
        model's); the resource's own APIs (files, batches, the model list, …) to
        ``/openai/…``. Raises ``BadRequest`` for an inference call naming no deployment."""
        if self.v1:
            path = api_path
        elif not api_path.startswith(_DEPLOYMENT_APIS):
            path = "/openai" + api_path
        else:
            deployment = self.deployment or model
            if not deployment:
                raise BadRequest(
                    f"provider {self.id!r}: its azureServiceUrl names no deployment, so the call must name a model",
                    reason="gateway.bad_request",
                )
            path = f"/openai/deployments/{quote(deployment, safe='')}{api_path}"
        return Endpoint(self.url_for(path, self._query(query)), self.credentials(token))

    def models_endpoint(self, token: str | None) -> Endpoint | None:
        return None
