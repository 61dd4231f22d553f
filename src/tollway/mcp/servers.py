"""The configured MCP servers as the relay uses them, built once per config snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from tollway.config.schema import McpServerConfig


@dataclass(frozen=True, slots=True)
class McpServer:
    name: str
    url: str
    # The server's credentials, names lower-case: added to every relayed request, in
    # place of any client header of the same name.
    headers: tuple[tuple[str, str], ...]
    header_names: frozenset[str]
    timeout_s: float

    @classmethod
    def from_config(cls, sc: McpServerConfig) -> McpServer:
        headers = tuple((k.lower(), v) for k, v in sc.headers.items())
        return cls(sc.name, sc.url, headers, frozenset(k for k, _ in headers), sc.timeout)


def build(configs: list[McpServerConfig]) -> dict[str, McpServer]:
    return {sc.name: McpServer.from_config(sc) for sc in configs}
