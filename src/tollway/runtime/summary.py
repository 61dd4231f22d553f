"""What the gateway says once it serves: where each provider's calls go, which routes
lead to them, which plugins run, where traces go.

Printed at start so that a config that means something else than its author thought
shows before the first call does: a quickstart that fell back to the mock model, a
provider without keys, a route without a provider.
"""

from __future__ import annotations

from tollway.gateway.snapshot import Snapshot
from tollway.urls import shown_url
from tollway.usage.tracing import traces_url


def startup_lines(snapshot: Snapshot) -> list[str]:
    """One line per provider (where its keys came from: a variable's name, never a key),
    per route, and one for the plugins."""
    cfg = snapshot.config
    lines = []
    for pc in cfg.providers:
        provider = snapshot.providers.get(pc.id)
        if pc.type == "mock" and not (pc.baseUrl or pc.openaiCustomUrl):
            where = "the built-in mock model (answers in-process; no real model is called)"
        else:
            base = provider.base_url if provider is not None else pc.baseUrl or "?"
            keys = _keys(pc.apiTokens, snapshot.loaded.key_sources.get(pc.id, ()))
            if provider is not None and provider.basic_auth:
                keys += "; Basic auth from the URL's user info"
            where = f"{pc.type} at {shown_url(base)} ({keys})"
        lines.append(f"provider {pc.id}: {where}")
    for rc in cfg.routes:
        path = rc.path or rc.path_regex or rc.path_prefix or "/"
        domains = "" if rc.domains == ["*"] else f" on {', '.join(rc.domains)}"
        targets = rc.providers or ([rc.provider] if rc.provider else [])
        if rc.mcp_server is not None:
            to = f" → MCP server {rc.mcp_server}"
        else:
            to = " → " + ", ".join(targets) if targets else " → no provider (plugins answer)"
        by_model = "".join(f"; {pattern} → {pid}" for pattern, pid in rc.model_providers.items())
        lines.append(f"route {rc.name}: {path}{domains}{to}{by_model}")
    names = [setup.name for setup in snapshot.loaded.plugins]
    lines.append("plugins: " + (", ".join(names) if names else "none"))
    telemetry = cfg.telemetry
    if telemetry.otlp_endpoint is not None:
        lines.append(
            f"telemetry: spans to {shown_url(traces_url(telemetry.otlp_endpoint))} as service"
            f" {telemetry.service_name!r},"
            f" {telemetry.sample_ratio * 100:g}% of the calls that start a trace"
        )
    return lines


def _keys(tokens: list[str], sources: tuple[str, ...]) -> str:
    keys = [t for t in tokens if t]
    empty = len(tokens) - len(keys)
    # An empty key sends no key at all (a variable set to "", or its default ""): said,
    # since the provider's 401 would otherwise be a mystery.
    blank = f" and {empty} empty (sent without a key)" if empty and keys else ""
    if not keys:
        return f"no key ({len(tokens)} empty)" if tokens else "no key"
    count = f"{len(keys)} key{'' if len(keys) == 1 else 's'}{blank}"
    if len(sources) != len(tokens):
        return count
    # "$A" once however many keys it gave; in the order written (the empty ones' left out).
    return f"{count} from " + ", ".join(dict.fromkeys(s for t, s in zip(tokens, sources, strict=True) if t))
