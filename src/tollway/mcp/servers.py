"""The configured MCP servers as the relay uses them, built once per config snapshot.

A ``type: rest`` server is the gateway's own (``rest_server``), reached through an ASGI
transport in this process; its OpenAPI document is read here, so a document that
cannot be read or used fails the config.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tollway.config.load import LoadedConfig
from tollway.config.schema import McpServerConfig
from tollway.plugins.key_auth import placed_consumer_lists
from tollway.providers.secrets import ProviderSecrets, of_headers
from tollway.upstream import Transport

# How much longer than a REST server's ``timeout`` the relay waits for its app (which
# answers as soon as the REST request ends, a timeout included).
_APP_MARGIN_S = 1.0


class McpServerProblem(ValueError):
    """Servers that cannot be built: ``problems`` holds one message each, starting with
    its config place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class McpServer:
    name: str
    url: str
    # The server's credentials, names lower-case: added to every relayed request, in
    # place of any client header of the same name.
    headers: tuple[tuple[str, str], ...]
    header_names: frozenset[str]
    timeout_s: float
    # The transport that reaches the server when it is not the process's own (a rest
    # server served in process).
    transport: Transport | None = None
    # The tools of a rest server (metric labels).
    tool_names: frozenset[str] = frozenset()
    # A rest server's: stop it once its config is replaced, after in-flight calls; and
    # stop it now (the process stops).
    retire: Callable[[], None] | None = None
    aclose: Callable[[], Awaitable[None]] | None = None
    # What of the credentials a server's answer may show, taken out before a client
    # sees it (a header's value, and its token after an auth scheme: ``Bearer t``).
    secrets: ProviderSecrets = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", of_headers(self.headers))

    @property
    def rest(self) -> bool:
        """A ``type: rest`` server: the gateway's own, served in process."""
        return self.transport is not None

    @classmethod
    def remote(cls, sc: McpServerConfig) -> McpServer:
        headers = tuple((k.lower(), v) for k, v in sc.headers.items())
        assert sc.url is not None
        return cls(sc.name, sc.url, headers, frozenset(k for k, _ in headers), sc.timeout)


def _rest(sc: McpServerConfig, place: str, upstream: Transport, base_dir: Path) -> McpServer:
    # The SDK loads only when a rest server is configured.
    from tollway.mcp import openapi
    from tollway.mcp.rest_server import INTERNAL_URL, RestMcpServer
    from tollway.mcp.rest_tools import RestTool
    from tollway.upstream.asgi_transport import AsgiTransport

    tools = []
    for i, t in enumerate(sc.tools):
        try:
            tools.append(RestTool.from_config(t))
        except ValueError as exc:
            raise McpServerProblem([f"{place}.tools[{i}].inputSchema: {exc}"]) from None
    if sc.openapi is not None:
        try:
            tools += openapi.load(base_dir / sc.openapi, sc.base_url)
        except (openapi.OpenApiError, ValueError) as exc:
            raise McpServerProblem([f"{place}.openapi: {exc}"]) from None
    names = [t.name for t in tools]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise McpServerProblem([f"{place}.tools: two tools are named {twice[0]!r}"])
    headers = tuple((k.lower(), v) for k, v in sc.headers.items())
    app = RestMcpServer(sc.name, tools, upstream, headers, sc.timeout)
    # The credentials go to the REST service with each tool call, not to the app. The
    # relay waits for the app a little past the REST request's own ``timeout``: with the
    # same bound, the relay's clock ran out with the request's, and the agent got the
    # relay's JSON-RPC error instead of the tool error the app answers a timeout with.
    waits = sc.timeout + _APP_MARGIN_S
    served = frozenset(names)
    return McpServer(sc.name, INTERNAL_URL, (), frozenset(), waits, AsgiTransport(app), served, app.retire, app.aclose)


def build(configs: list[McpServerConfig], upstream: Transport, base_dir: Path) -> dict[str, McpServer]:
    """The servers by name; raises ``McpServerProblem`` listing each that cannot be built
    (an ``ExceptionGroup`` would hide all but the first from a user)."""
    servers: dict[str, McpServer] = {}
    problems: list[str] = []
    for i, sc in enumerate(configs):
        try:
            servers[sc.name] = (
                _rest(sc, f"mcp_servers[{i}]", upstream, base_dir) if sc.type == "rest" else McpServer.remote(sc)
            )
        except McpServerProblem as exc:
            problems.extend(exc.problems)
    if problems:
        raise McpServerProblem(problems)
    return servers


def unknown_tool_servers(loaded: LoadedConfig) -> list[str]:
    """Problems (``place: why``) for a consumer's ``allow_tools`` naming no MCP server of
    the config: a typo there (``githb``) would leave the consumer every tool of the
    server meant, since no entry for a server means all its tools."""
    names = {s.name for s in loaded.config.mcp_servers}
    problems: list[str] = []
    told: set[tuple[str, str]] = set()
    for place, cfg in placed_consumer_lists(loaded):
        for k, entry in enumerate(cfg.consumers):
            for server in entry.allow_tools or {}:
                if server in names or (entry.name, server) in told:
                    continue
                told.add((entry.name, server))
                known = ", ".join(sorted(names)) or "none"
                problems.append(
                    f"{place}.consumers[{k}].allow_tools: no MCP server named {server!r} "
                    f"(consumer {entry.name!r}; mcp_servers: {known})"
                )
    return problems
