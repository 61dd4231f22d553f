"""Recording plugins for the chain, snapshot and harness tests: each notes every hook it
sees on the exchange (``calls``), and answers, refuses, crashes, drops or holds stream
events when its config says so. ``Recorder`` runs in the default phase; the others in AUTHN,
AUTHZ and STATS. The ``registered`` fixture (tests/unit/conftest.py) puts them in the plugin
registry."""

from __future__ import annotations

from typing import Any, ClassVar

from tollway.errors import Forbidden
from tollway.exchange import Exchange, Reply, StateKey
from tollway.plugin import Phase, Plugin, PluginConfig
from tollway.protocols.sse import SseEvent
from tollway.testing.harness import make_plugin

CALLS: StateKey[list[str]] = StateKey("test.calls")
HELD: StateKey[dict[str, SseEvent]] = StateKey("test.held")


def calls(ex: Exchange) -> list[str]:
    seen = ex.get(CALLS)
    if seen is None:
        seen = []
        ex.put(CALLS, seen)
    return seen


class RecorderConfig(PluginConfig):
    tag: str = ""
    color: str = "plain"
    reply_with: int | None = None
    refuse: bool = False
    crash: bool = False
    drop_events: bool = False
    hold_events: bool = False


class Recorder(Plugin[RecorderConfig]):
    """Notes every hook it sees on the exchange; answers, refuses or crashes on request."""

    name: ClassVar[str] = "recorder"
    phase: ClassVar[Phase] = Phase.UNSPECIFIED
    priority: ClassVar[int] = 0
    config_model = RecorderConfig

    def note(self, ex: Exchange, hook: str) -> None:
        calls(ex).append(f"{self.config.tag}.{hook}")

    async def request_headers(self, ex: Exchange) -> Reply | None:
        self.note(ex, "headers")
        if self.config.crash:
            raise RuntimeError("plugin bug")
        if self.config.refuse:
            raise Forbidden("no", reason=f"{self.config.tag}.refused")
        if self.config.reply_with is not None:
            return Reply(self.config.reply_with, [("content-type", "text/plain")], self.config.tag.encode())
        return None

    async def request_body(self, ex: Exchange) -> Reply | None:
        self.note(ex, "body")
        return None

    async def response_headers(self, ex: Exchange, status: int, headers: list[tuple[str, str]]) -> None:
        self.note(ex, "resp_headers")
        headers.append((f"x-seen-{self.config.tag}", self.config.color))

    async def response_body(self, ex: Exchange, body: bytes) -> bytes:
        self.note(ex, "resp_body")
        return body + f"+{self.config.tag}".encode()

    def stream_event(self, ex: Exchange, event: SseEvent) -> list[SseEvent]:
        self.note(ex, "event")
        if self.config.drop_events:
            return []
        if self.config.hold_events:
            held = ex.get(HELD) or {}
            held[self.config.tag] = event
            ex.put(HELD, held)
            return []
        return [SseEvent.build(f"{event.data}>{self.config.tag}")]

    def stream_end(self, ex: Exchange) -> list[SseEvent]:
        event = (ex.get(HELD) or {}).pop(self.config.tag, None)
        return [event] if event is not None else []

    async def done(self, ex: Exchange) -> None:
        self.note(ex, "done")
        if self.config.crash:
            raise RuntimeError("a done hook that raises")


class AuthnRecorder(Recorder):
    name = "rec-authn"
    phase = Phase.AUTHN
    priority = 100


class AuthzRecorder(Recorder):
    name = "rec-authz"
    phase = Phase.AUTHZ
    priority = 900


class StatsRecorder(Recorder):
    name = "rec-stats"
    phase = Phase.STATS
    priority = 5


RECORDERS: tuple[type[Recorder], ...] = (Recorder, AuthnRecorder, AuthzRecorder, StatsRecorder)


def recorder(tag: str, **config: Any) -> Recorder:
    plugin = make_plugin("recorder", {"tag": tag, **config})
    assert isinstance(plugin, Recorder)
    return plugin
