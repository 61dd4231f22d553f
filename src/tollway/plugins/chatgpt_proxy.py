"""chatgpt-proxy (AUTHZ, 1): the seed's plugin. ``GET /?text=Say,hello`` becomes a
legacy Completions call with the organisation's key, answered as the provider answered.

A ``chatgptUri`` with the ``mock`` scheme (``mock://v1/completions``) calls the
built-in mock model in this process, so the seed runs with no second server.
"""

from __future__ import annotations

import time
from typing import ClassVar

import orjson
from pydantic import AliasChoices, Field, field_validator

from tollway.errors import BadRequest
from tollway.exchange import Attempt, Exchange, Reply
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.protocols.usage import apply_usage
from tollway.providers.errors import translate
from tollway.services import Services
from tollway.upstream import TransportError, TransportTimeout, UpstreamRequest

_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade", "date", "server"}
)


class ChatgptProxyConfig(PluginConfig):
    apiKey: str = Field(min_length=1)
    model: str = "text-davinci-003"
    promptParam: str = "prompt"
    chatgptUri: str = "api.openai.com/v1/completions"
    HumanId: str = Field("Human:", validation_alias=AliasChoices("HumanId", "HumainId"))
    AIId: str = "AI:"

    @field_validator("chatgptUri")
    @classmethod
    def _uri(cls, v: str) -> str:
        url = v if "://" in v else "https://" + v
        scheme, _, rest = url.partition("://")
        host, slash, path = rest.partition("/")
        if scheme not in ("http", "https", "mock") or (not host and scheme != "mock") or not slash or not path:
            raise ValueError("must be a URL with a host and a path, e.g. https://api.openai.com/v1/completions")
        return url


class ChatgptProxy(Plugin[ChatgptProxyConfig]):
    name = "chatgpt-proxy"
    phase = Phase.AUTHZ
    priority = 1
    config_model = ChatgptProxyConfig
    timeout_s: ClassVar[float] = 10.0  # as the seed's plugin: a 10 s call

    def __init__(self, config: ChatgptProxyConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.is_mock = config.chatgptUri.startswith("mock://")
        self.url = (
            config.chatgptUri.replace("mock://", "http://mock.tollway.internal/", 1)
            if self.is_mock
            else config.chatgptUri
        )

    async def request_headers(self, ex: Exchange) -> Reply | None:
        """The call's body, made from the query: the body the provider gets
        (``Exchange.upstream_json``), and the call itself, which the gateway makes where it
        would send a call to the route's providers (``Exchange.upstream_call``): after
        every request plugin (ai-data-masking masks the prompt, the token limits and
        quotas reserve) and the budget hold, as any provider call."""
        prompt = ex.request.query_param(self.config.promptParam)
        if prompt is None or prompt == "":
            raise BadRequest(
                f"need prompt param {self.config.promptParam!r} in the query string", reason="gateway.bad_request"
            )
        cfg = self.config
        ex.upstream_json = {
            "model": cfg.model,
            "prompt": prompt,
            "temperature": 0.9,
            "max_tokens": 150,
            "top_p": 1,
            "frequency_penalty": 0,
            "presence_penalty": 0.6,
            "stop": [cfg.HumanId, cfg.AIId],
        }
        ex.api = "completions"  # (what the provider is asked; its record says so)
        ex.model_requested = ex.model_upstream = cfg.model
        ex.upstream_call = self._call
        return None

    async def _call(self, ex: Exchange) -> Reply:
        cfg = self.config
        body = orjson.dumps(ex.body_json())
        ex.model_requested = ex.model_upstream = cfg.model  # (whatever a body the client sent named)
        ex.provider = self.name
        headers = [
            ("content-type", "application/json"),
            ("authorization", f"Bearer {cfg.apiKey}"),
            *ex.upstream_headers,
        ]
        span_id = 0
        if ex.trace is not None:  # telemetry on and the call sampled: the provider continues its trace
            span_id, traceparent = ex.trace.attempt(self.name, "mock" if self.is_mock else "openai")
            headers.append(("traceparent", traceparent))
        transport = self.services.mock_transport if self.is_mock else self.services.transport
        t0 = time.perf_counter()

        try:
            resp = await transport.send(
                UpstreamRequest("POST", self.url, headers, body, self.timeout_s, self.timeout_s)
            )
            try:
                answer = await resp.read()
            finally:
                await resp.aclose()
        except TransportError as exc:
            status = 504 if isinstance(exc, TransportTimeout) else 502
            err = translate(exc, self.name)
            ex.attempts.append(Attempt(self.name, status, (time.perf_counter() - t0) * 1000, t0, span_id, err.reason))
            raise err from None
        ex.attempts.append(Attempt(self.name, resp.status, (time.perf_counter() - t0) * 1000, t0, span_id))
        if resp.status == 200:
            try:
                apply_usage(ex.usage, orjson.loads(answer).get("usage"))
            except (orjson.JSONDecodeError, AttributeError):
                pass
        return Reply(resp.status, [(k, v) for k, v in resp.headers if k not in _HOP], answer)
