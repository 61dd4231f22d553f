"""The chain runner: the one place that decides plugin order and short-circuits.

Request hooks run in order (phase, then priority, highest first); response hooks run
in the reverse order. A raised ``GatewayError`` or a returned ``Reply`` ends the
request phase. ``done`` runs for every plugin, always, whatever happened.

Any other exception is a bug in the plugin. Its entry's ``failure_mode`` decides what
it costs: ``closed`` (the default) fails the call with a 500 naming the plugin;
``open`` skips that plugin for this call (a stream event passes through unchanged) and
the call goes on. Either way the error is logged, at most once a minute per plugin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tollway.errors import GatewayError
from tollway.exchange import Exchange, Reply
from tollway.plugin import Plugin, PluginConfig, overrides
from tollway.protocols.sse import SseEvent

log = logging.getLogger("tollway.chain")

AnyPlugin = Plugin[PluginConfig]

_LOG_EVERY_S = 60.0
_last_logged: dict[str, float] = {}


def _plugin_failed(p: AnyPlugin, hook: str, exc: Exception) -> None:
    """Log the bug (rate-limited), then raise the closed-mode error unless the plugin fails open."""
    now = time.monotonic()
    if now - _last_logged.get(p.name, -_LOG_EVERY_S) >= _LOG_EVERY_S:
        _last_logged[p.name] = now
        log.error(
            "plugin %s failed in %s (failure_mode %s)", p.name, hook, p.scope.failure_mode or "closed", exc_info=exc
        )
    if p.scope.failure_mode != "open":
        raise GatewayError(
            f"plugin {p.name} failed; see the gateway's log",
            reason=f"{p.name}.internal_error",
            status=500,
            code="internal_error",
        ) from exc


async def _first_reply(plugins: Sequence[AnyPlugin], hook: str, ex: Exchange) -> Reply | None:
    """Runs a request hook in order; the first reply (or refusal) ends the phase."""
    for p in plugins:
        try:
            reply: Reply | None = await getattr(p, hook)(ex)
        except GatewayError:
            raise
        except Exception as exc:
            _plugin_failed(p, hook, exc)
            continue
        if reply is not None:
            return reply
    return None


class Chain:
    """The plugins that apply to one (route, host), with each hook's callers precomputed."""

    __slots__ = (
        "_done",
        "_req_body",
        "_req_headers",
        "_resp_body",
        "_resp_headers",
        "_stream",
        "_stream_end",
        "plugins",
    )

    def __init__(self, plugins: Sequence[AnyPlugin]) -> None:
        self.plugins = tuple(plugins)
        forward = self.plugins
        backward = tuple(reversed(self.plugins))
        self._req_headers = tuple(p for p in forward if overrides(p, "request_headers"))
        self._req_body = tuple(p for p in forward if overrides(p, "request_body"))
        self._resp_headers = tuple(p for p in backward if overrides(p, "response_headers"))
        self._resp_body = tuple(p for p in backward if overrides(p, "response_body"))
        self._stream = tuple(p for p in backward if overrides(p, "stream_event"))
        self._stream_end = tuple(p for p in backward if overrides(p, "stream_end"))
        self._done = tuple(p for p in backward if overrides(p, "done"))

    @property
    def wants_body(self) -> bool:
        return bool(self._req_body)

    @property
    def has_done(self) -> bool:
        return bool(self._done)

    @property
    def rewrites_stream(self) -> bool:
        return bool(self._stream) or bool(self._stream_end)

    async def request_headers(self, ex: Exchange) -> Reply | None:
        return await _first_reply(self._req_headers, "request_headers", ex)

    async def request_body(self, ex: Exchange) -> Reply | None:
        return await _first_reply(self._req_body, "request_body", ex)

    async def response_headers(self, ex: Exchange, status: int, headers: list[tuple[str, str]]) -> None:
        for p in self._resp_headers:
            try:
                await p.response_headers(ex, status, headers)
            except GatewayError:
                raise
            except Exception as exc:
                _plugin_failed(p, "response_headers", exc)

    async def response_body(self, ex: Exchange, body: bytes) -> bytes:
        for p in self._resp_body:
            try:
                body = await p.response_body(ex, body)
            except GatewayError:
                raise
            except Exception as exc:
                _plugin_failed(p, "response_body", exc)
        return body

    def stream_event(self, ex: Exchange, event: SseEvent) -> list[SseEvent]:
        events = [event]
        for p in self._stream:
            out: list[SseEvent] = []
            for e in events:
                try:
                    out.extend(p.stream_event(ex, e))
                except GatewayError:
                    raise
                except Exception as exc:
                    _plugin_failed(p, "stream_event", exc)
                    out.append(e)
            events = out
            if not events:
                break
        return events

    def stream_end(self, ex: Exchange) -> list[SseEvent]:
        """Flushes held-back events; each plugin's flush still passes the plugins after it."""
        events: list[SseEvent] = []
        for p in self._stream_end:
            flushed = p.stream_end(ex)
            later = self._stream[self._stream.index(p) + 1 :] if p in self._stream else ()
            for e in flushed:
                batch = [e]
                for q in later:
                    batch = [x for y in batch for x in q.stream_event(ex, y)]
                events.extend(batch)
        return events

    def identify(self, ex: Exchange) -> None:
        """Names the consumer of a refused call when an auth plugin can tell who it was."""
        for p in self.plugins:
            consumer = p.identify(ex)
            if consumer is not None:
                ex.consumer = consumer
                return

    async def done(self, ex: Exchange) -> None:
        for p in self._done:
            try:
                await p.done(ex)
            except Exception:  # a done hook must never take the others down with it
                log.exception("plugin %s failed in its done hook", p.name)
