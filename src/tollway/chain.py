"""The chain runner: the one place that decides plugin order and short-circuits.

Request hooks run in order (phase, then priority, highest first); response hooks run
in the reverse order (an onion). A raised ``GatewayError`` or a returned ``Reply`` ends
the request phase. ``done`` runs for every plugin, always, whatever happened.

Any other exception is a bug in the plugin. Its entry's ``failure_mode`` decides what
it costs, in every hook but ``done``: ``closed`` (the default) fails the call with a 500
naming the plugin (after the answer has begun, an error event ends the stream);
``open`` skips that plugin for this call (an event passes through unchanged) and the
call goes on. Either way the error is logged, at most once a minute per plugin
(``FailureLog``, one per process, owned by the runtime).
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


class FailureLog:
    """When each plugin's failure was last logged: a bug that fires on every call costs
    one log line a minute, not one per call."""

    __slots__ = ("_last", "every_s")

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}

    def due(self, plugin: str) -> bool:
        now = time.monotonic()
        if now - self._last.get(plugin, -self.every_s) < self.every_s:
            return False
        self._last[plugin] = now
        return True


class Chain:
    """The plugins that apply to one (route, host), with each hook's callers precomputed."""

    __slots__ = (
        "_done",
        "_failures",
        "_req_body",
        "_req_headers",
        "_resp_body",
        "_resp_headers",
        "_stream",
        "_stream_end",
        "has_done",
        "on_request_body",
        "on_request_headers",
        "on_response_body",
        "on_response_headers",
        "plugins",
        "rewrites_stream",
    )

    def __init__(self, plugins: Sequence[AnyPlugin], failures: FailureLog) -> None:
        self.plugins = tuple(plugins)
        self._failures = failures
        forward = self.plugins
        backward = tuple(reversed(self.plugins))
        self._req_headers = tuple(p for p in forward if overrides(p, "request_headers"))
        self._req_body = tuple(p for p in forward if overrides(p, "request_body"))
        self._resp_headers = tuple(p for p in backward if overrides(p, "response_headers"))
        self._resp_body = tuple(p for p in backward if overrides(p, "response_body"))
        self._stream = tuple(p for p in backward if overrides(p, "stream_event"))
        self._stream_end = tuple(p for p in backward if overrides(p, "stream_end"))
        self._done = tuple(p for p in backward if overrides(p, "done"))
        # Whether any plugin has each hook: the gateway calls a phase only when one does
        # (most chains leave most phases empty, and each call costs a coroutine).
        self.on_request_headers = bool(self._req_headers)
        self.on_request_body = bool(self._req_body)
        self.on_response_headers = bool(self._resp_headers)
        self.on_response_body = bool(self._resp_body)
        self.rewrites_stream = bool(self._stream) or bool(self._stream_end)
        self.has_done = bool(self._done)

    def _failed(self, p: AnyPlugin, hook: str, exc: Exception) -> None:
        """Log the bug (rate-limited), then raise the closed-mode error unless the
        plugin fails open."""
        if self._failures.due(p.name):
            mode = p.scope.failure_mode or "closed"
            log.error("plugin %s failed in %s (failure_mode %s)", p.name, hook, mode, exc_info=exc)
        if p.scope.failure_mode != "open":
            raise GatewayError(
                f"plugin {p.name} failed; see the gateway's log",
                reason=f"{p.name}.internal_error",
                status=500,
                code="internal_error",
            ) from exc

    async def _first_reply(self, plugins: Sequence[AnyPlugin], hook: str, ex: Exchange) -> Reply | None:
        for p in plugins:
            try:
                reply: Reply | None = await getattr(p, hook)(ex)
            except GatewayError:
                raise
            except Exception as exc:
                self._failed(p, hook, exc)
                continue
            if reply is not None:
                return reply
        return None

    async def request_headers(self, ex: Exchange) -> Reply | None:
        """The request line and headers are in: the first reply or refusal ends the phase."""
        return await self._first_reply(self._req_headers, "request_headers", ex)

    async def request_body(self, ex: Exchange) -> Reply | None:
        """The body and the request's facts are in: the first reply or refusal ends the phase."""
        return await self._first_reply(self._req_body, "request_body", ex)

    async def response_headers(self, ex: Exchange, status: int, headers: list[tuple[str, str]]) -> None:
        for p in self._resp_headers:
            try:
                await p.response_headers(ex, status, headers)
            except GatewayError:
                raise
            except Exception as exc:
                self._failed(p, "response_headers", exc)

    async def response_body(self, ex: Exchange, body: bytes) -> bytes:
        for p in self._resp_body:
            try:
                body = await p.response_body(ex, body)
            except GatewayError:
                raise
            except Exception as exc:
                self._failed(p, "response_body", exc)
        return body

    def stream_events(self, ex: Exchange, events: list[SseEvent]) -> list[SseEvent]:
        """One batch of a stream's events through every plugin's ``stream_event``."""
        return self._through(self._stream, ex, events)

    def stream_end(self, ex: Exchange) -> list[SseEvent]:
        """The stream ended normally: what each plugin held back, still passed through
        the plugins after it."""
        events: list[SseEvent] = []
        for p in self._stream_end:
            try:
                flushed = p.stream_end(ex)
            except GatewayError:
                raise
            except Exception as exc:
                self._failed(p, "stream_end", exc)
                continue
            if flushed:
                later = self._stream[self._stream.index(p) + 1 :] if p in self._stream else ()
                events.extend(self._through(later, ex, flushed))
        return events

    def _through(self, plugins: Sequence[AnyPlugin], ex: Exchange, events: list[SseEvent]) -> list[SseEvent]:
        for p in plugins:
            out: list[SseEvent] = []
            for e in events:
                try:
                    out.extend(p.stream_event(ex, e))
                except GatewayError:
                    raise
                except Exception as exc:
                    self._failed(p, "stream_event", exc)
                    out.append(e)
            events = out
            if not events:
                break
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
