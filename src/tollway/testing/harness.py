"""A harness for testing one plugin without sockets.

Build an exchange as the gateway would (``make_exchange``: the request's facts are set
as the gateway sets them), build a plugin from the same config dict a user would write
(``make_plugin``), and run its request hooks as the chain runs them (``run_request``)::

    plugin = make_plugin("key-auth", {"keys": ["x-api-key"], "consumers": [...]})
    ex = make_exchange("POST", "/v1/chat/completions", {"x-api-key": "k1"}, body=b"{}")
    outcome = await run_request(plugin, ex)   # None, a Reply, or the GatewayError raised

Calls a plugin makes to a provider go to the built-in mock model in this process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tollway.errors import GatewayError
from tollway.exchange import Exchange, Reply, Request
from tollway.gateway import facts
from tollway.headers import Headers
from tollway.mockllm import create_app as create_mock_app
from tollway.plugin import Plugin, PluginConfig, Scope
from tollway.plugins.registry import REGISTRY
from tollway.routing.hosts import strip_port
from tollway.services import Services
from tollway.state import StateStore
from tollway.state.memory import MemoryStateStore
from tollway.upstream.asgi_transport import AsgiTransport

AnyPlugin = Plugin[PluginConfig]
HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]


def make_exchange(
    method: str = "GET",
    path: str = "/",
    headers: HeaderInput = (),
    query: str = "",
    body: bytes | None = None,
    *,
    client_ip: str = "127.0.0.1",
    request_id: str = "test-request",
) -> Exchange:
    """An exchange for one request, its facts set as the gateway sets them (those of the
    body too, when one is given). ``query`` is the raw query string (no ``?``);
    ``headers`` a mapping or (name, value) pairs; ``host`` comes from the Host header."""
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    hdrs = Headers(items)
    req = Request(
        method=method.upper(),
        path=path,
        query=query,
        headers=hdrs,
        client_ip=client_ip,
        host=strip_port(hdrs.get("host") or ""),
        body=body,
    )
    ex = Exchange(request_id=request_id, request=req)
    facts.from_path(ex)
    if body is not None:
        facts.from_body(ex)
    return ex


def make_services(*, state: StateStore | None = None, local_state: StateStore | None = None) -> Services:
    """Services whose transports call the built-in mock model in this process; state in
    memory unless given."""
    transport = AsgiTransport(create_mock_app())
    return Services(
        transport=transport,
        mock_transport=transport,
        state=state or MemoryStateStore(),
        local_state=local_state or MemoryStateStore(),
    )


def make_plugin(
    name: str,
    config: Mapping[str, Any],
    has_rules: bool = False,
    *,
    rule: int | None = None,
    services: Services | None = None,
) -> AnyPlugin:
    """The plugin registered as ``name``, built from ``config`` as the config file gives it.

    ``has_rules`` says whether the plugin entry has match rules (key-auth's
    ``global_auth`` default depends on it); ``rule`` is the index of the match rule this
    object stands for (``None``: the default config). An invalid config raises
    pydantic's ``ValidationError``.
    """
    cls = REGISTRY[name]
    validated = cls.config_model.model_validate(dict(config))
    return cls(validated, Scope(name, rule, has_rules), services or make_services())


async def run_request(plugin: Plugin[Any], ex: Exchange) -> Reply | GatewayError | None:
    """Run ``request_headers`` (body not yet read), then ``request_body``, as the chain
    does, then the provider call the plugin made its own (``Exchange.upstream_call``,
    chatgpt-proxy's), as the gateway does; return the plugin's ``Reply``, the
    ``GatewayError`` it raised, or ``None`` when it lets the request go on."""
    body = ex.request.body
    ex.request.body = None
    try:
        reply = await plugin.request_headers(ex)
        if reply is not None:
            return reply
        ex.request.body = body if body is not None else b""
        reply = await plugin.request_body(ex)
        if reply is None and ex.upstream_call is not None:
            return await ex.upstream_call(ex)
        return reply
    except GatewayError as err:
        ex.fail(err)
        return err
    finally:
        if ex.request.body is None:
            ex.request.body = body


__all__ = ["make_exchange", "make_plugin", "make_services", "run_request"]
