"""What goes to the provider: the client's request with the provider's credential in
place of the client's, the model mapped, and nothing a client must not choose.

Request headers pass through except hop-by-hop ones, what the transport sets itself,
every header a client credential may ride in (the provider's own auth replaces it), and
the headers that choose the organisation's provider account (unless the provider's
``pass_headers`` names them); each in every spelling a server may read as it (``_`` for
``-``). What key-auth read is stripped too (``ex.strip_headers``, ``ex.strip_params``), and any
header or parameter holding the consumer's key (``ex.credential``).
Plugins see the client's request as it was sent: only this copy is edited.

A traced call (``ex.trace``) sends its own ``traceparent`` instead of the client's
(``trace_context``); a call that is not traced passes the client's trace headers on
unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.exchange import CallTrace, Exchange, StateKey
from tollway.headers import HOP_BY_HOP, SENDER_SET, spellings
from tollway.protocols.apis import with_path_model
from tollway.providers.base import Provider
from tollway.proxy.translation import PROTOCOL_HEADERS

_DROP = frozenset().union(
    *(
        spellings(name)
        for name in (
            *HOP_BY_HOP,
            *SENDER_SET,
            "proxy-authorization",
            "x-mse-consumer",
            "authorization",
            "x-api-key",
            "api-key",
            "x-goog-api-key",
            "x-request-id",
        )
    )
)

# Set when the gateway asked for the usage chunk itself, so the client must not see it.
HIDE_USAGE: StateKey[bool] = StateKey("ai-proxy.hide_usage")


def body(ex: Exchange, provider: Provider, client_body: dict[str, Any] | None) -> bytes:
    """The JSON body for ``provider``: the model mapped, a stream asked to report its
    usage (hidden again from a client that did not ask), the provider's custom settings.
    The client's bytes as they came when nothing changes."""
    raw = ex.request.body or b""
    if client_body is None:  # not a model API the proxy edits; a plugin may have rewritten it
        if ex.upstream_form is not None:
            raw = ex.upstream_form  # a form's text masked (an image edit's prompt)
        if ex.model_in_path and ex.model_requested:
            # A provider's own API naming the model in its path (Gemini's): mapped there
            # (``path``), its body given the provider's settings as a chat call's is.
            ex.model_upstream = provider.map_model(ex.model_requested)
            if provider.sets_body:
                own = ex.upstream_json if ex.upstream_json is not None else _json_object(ex)
                if own is not None:
                    return orjson.dumps(provider.own_api_body(own))
        else:
            # Its model (an image or audio call's) reaches the provider as the client named it.
            ex.model_upstream = ex.model_requested
        return raw if ex.upstream_json is None else orjson.dumps(ex.upstream_json)
    changed = ex.upstream_json is not None
    if provider.sets_body:
        client_body = provider.native_body(provider.pivot_body(client_body), translated=False)
        changed = True
    if ex.model_requested:
        mapped = provider.map_model(ex.model_requested)
        ex.model_upstream = mapped
        if mapped != ex.model_requested:
            client_body = {**client_body, "model": mapped}
            changed = True
    if ex.stream and ex.api in ("chat", "completions"):
        opts = client_body.get("stream_options")
        if not (isinstance(opts, dict) and opts.get("include_usage") is True):
            client_body = {
                **client_body,
                "stream_options": {**(opts if isinstance(opts, dict) else {}), "include_usage": True},
            }
            ex.put(HIDE_USAGE, True)
            changed = True
    return orjson.dumps(client_body) if changed else raw


def _json_object(ex: Exchange) -> dict[str, Any] | None:
    try:
        parsed = ex.body_json()
    except GatewayError:
        return None  # not JSON: the provider answers it as it is
    return parsed if isinstance(parsed, dict) else None


def path(ex: Exchange) -> str:
    """The API path the provider is asked at: the client's, with a model named in it
    replaced by the one the provider's mapping gives (``body`` decides it)."""
    upstream = ex.upstream_api_path
    if not ex.model_in_path or ex.model_upstream is None or ex.model_upstream == ex.model_requested:
        return upstream
    return with_path_model(upstream, ex.model_upstream)


@lru_cache(maxsize=256)
def _dropped_for(withheld: frozenset[str], auth: tuple[str, ...], translated: bool) -> frozenset[str]:
    """What never goes to a provider that withholds ``withheld`` and sets the ``auth``
    headers itself (the provider's own headers, claude's anthropic-version beside its
    key, replace a client's header of the same name: two values would reach the
    provider). One set per provider and kind of call, made once, not per call."""
    drop = _DROP | withheld | frozenset(auth)
    return drop | PROTOCOL_HEADERS if translated else drop


def headers(
    ex: Exchange, provider: Provider, auth: Sequence[tuple[str, str]], translated: bool
) -> list[tuple[str, str]]:
    settable = provider.client_settable
    if settable and not translated:
        sent = [name for name in settable if name in ex.request.headers]
        if sent:
            # The client's value goes on (not dropped), the provider's default not added.
            auth = [(k, v) for k, v in auth if k not in sent]
    drop = _dropped_for(provider.withheld_headers, tuple([k for k, _ in auth]), translated)
    # What this call adds (a few names) is checked apart: a union with ``drop`` would
    # copy its fifty names on every call.
    strip: set[str] = ex.strip_headers
    # Most clients send no Connection header: one dict lookup, no list scan.
    named = ",".join(ex.request.headers.get_all("connection")).lower() if "connection" in ex.request.headers else ""
    if named and named not in ("keep-alive", "close"):
        # Headers the client names in Connection are hop-by-hop too (RFC 9110 §7.6.1).
        strip = strip | {n.strip() for n in named.split(",")}
    if strip:
        out = [(k, v) for k, v in ex.request.headers if k not in drop and k not in strip]
    else:
        out = [(k, v) for k, v in ex.request.headers if k not in drop]
    out = ex.without_credential(out)
    out.extend(ex.upstream_headers)
    out.extend(auth)
    return out


def trace_context(trace: CallTrace, provider: Provider, headers: list[tuple[str, str]]) -> int:
    """Puts this attempt's ``traceparent`` in ``headers`` (the call's trace id, the
    attempt's span as the parent) in place of the client's, and returns the attempt's
    span id. The client's ``tracestate`` passes on with the trace it belongs to, and is
    dropped when its ``traceparent`` was not continued (a new trace began here)."""
    span_id, traceparent = trace.attempt(provider.id, provider.type)
    continued = trace.parent_id != 0
    headers[:] = [h for h in headers if h[0] != "traceparent" and (continued or h[0] != "tracestate")]
    headers.append(("traceparent", traceparent))
    return span_id
