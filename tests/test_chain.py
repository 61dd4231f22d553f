"""The chain runner and plugin scoping (SPEC §2 `plugins`, STYLE "the chain is the spine").

Request hooks run in phase order (AUTHN > AUTHZ > STATS > UNSPECIFIED), then priority
(highest first); response hooks in reverse; a reply or an error short-circuits; ``done``
always runs. Which plugin object serves a request: the first matching rule (by route
name under ``ingress``, or by host under ``domain``), its config laid over the default,
else the default unless ``defaultConfigDisable``. All without sockets.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import httpx
import pytest

from tollway.chain import Chain, FailureLog
from tollway.config.load import load_config_text
from tollway.errors import Forbidden, GatewayError
from tollway.exchange import Exchange, Reply, StateKey
from tollway.gateway.snapshot import Snapshot
from tollway.plugin import Phase, Plugin, PluginConfig
from tollway.plugins.key_auth import KeyAuth
from tollway.plugins.registry import PLUGIN_MODELS, REGISTRY
from tollway.protocols.sse import SseEvent
from tollway.runtime.root import ConfigSource, Runtime
from tollway.testing.harness import make_exchange, make_plugin, make_services, run_request
from tollway.usage.access_log import AccessLog

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


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for cls in RECORDERS:
        monkeypatch.setitem(REGISTRY, cls.name, cls)  # type: ignore[arg-type]
        monkeypatch.setitem(PLUGIN_MODELS, cls.name, cls.config_model)  # type: ignore[arg-type]
    yield


def chain_of_plugins(*plugins: Plugin[Any]) -> Chain:
    return Chain(cast("list[Plugin[PluginConfig]]", list(plugins)), FailureLog())


def recorder(tag: str, **config: Any) -> Recorder:
    plugin = make_plugin("recorder", {"tag": tag, **config})
    assert isinstance(plugin, Recorder)
    return plugin


def snapshot(config: str, tmp_path: Path) -> Snapshot:
    return Snapshot(load_config_text(config, plugins=PLUGIN_MODELS, base_dir=tmp_path), make_services(), FailureLog())


def chain_of(snap: Snapshot, route: str, host: str = "gw.local") -> Chain:
    return snap.chain_for(snap.routes.by_name[route], host)


def described(chain: Chain) -> list[str]:
    """Each plugin in the chain as name:tag-or-rule."""
    out = []
    for p in chain.plugins:
        tag = getattr(p.config, "tag", None)
        out.append(f"{p.name}:{tag}" if tag is not None else f"{p.name}:rule{p.scope.rule}")
    return out


# --- the runner -----------------------------------------------------------------------------


async def test_request_hooks_run_in_order_and_response_hooks_in_reverse(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b"), recorder("c"))
    ex = make_exchange("POST", "/v1/x", body=b"{}")
    assert await chain.request_headers(ex) is None
    assert await chain.request_body(ex) is None
    headers: list[tuple[str, str]] = []
    await chain.response_headers(ex, 200, headers)
    body = await chain.response_body(ex, b"answer")
    await chain.done(ex)
    assert calls(ex) == [
        "a.headers", "b.headers", "c.headers",
        "a.body", "b.body", "c.body",
        "c.resp_headers", "b.resp_headers", "a.resp_headers",
        "c.resp_body", "b.resp_body", "a.resp_body",
        "c.done", "b.done", "a.done",
    ]  # fmt: skip
    assert body == b"answer+c+b+a"
    assert [name for name, _ in headers] == ["x-seen-c", "x-seen-b", "x-seen-a"]


async def test_a_reply_short_circuits_the_request_phase(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", reply_with=418), recorder("c"))
    ex = make_exchange()
    reply = await chain.request_headers(ex)
    assert reply is not None and (reply.status, reply.body) == (418, b"b")
    assert calls(ex) == ["a.headers", "b.headers"]


async def test_an_error_short_circuits_and_done_still_runs_everywhere(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", refuse=True), recorder("c"))
    ex = make_exchange()
    with pytest.raises(GatewayError) as raised:
        await chain.request_headers(ex)
    assert raised.value.reason == "b.refused"
    await chain.done(ex)
    assert calls(ex) == ["a.headers", "b.headers", "c.done", "b.done", "a.done"]


async def test_a_done_hook_that_raises_does_not_stop_the_others(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", crash=True), recorder("c"))
    ex = make_exchange()
    await chain.done(ex)
    assert calls(ex) == ["c.done", "b.done", "a.done"]


async def test_stream_events_pass_plugins_in_reverse_and_may_be_dropped(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b"), recorder("c"))
    ex = make_exchange()
    out = chain.stream_events(ex, [SseEvent.build("e")])
    assert [e.data for e in out] == ["e>c>b>a"]
    dropping = chain_of_plugins(recorder("a"), recorder("b", drop_events=True), recorder("c"))
    ex = make_exchange()
    assert dropping.stream_events(ex, [SseEvent.build("e")]) == []
    assert calls(ex) == ["c.event", "b.event"]


async def test_events_flushed_at_the_end_still_pass_the_plugins_after(registered: None) -> None:
    chain = chain_of_plugins(recorder("a"), recorder("b", hold_events=True), recorder("c"))
    ex = make_exchange()
    assert chain.stream_events(ex, [SseEvent.build("e")]) == []
    flushed = chain.stream_end(ex)
    assert [e.data for e in flushed] == ["e>c>a"]


# --- order across phases and priorities, as the snapshot builds it -------------------------


ROUTES = """
routes:
  - {name: chat, path_prefix: /v1/}
  - {name: other, path_prefix: /other/}
"""


def test_phase_beats_priority_then_highest_priority_first(registered: None, tmp_path: Path) -> None:
    snap = snapshot(
        ROUTES
        + """
plugins:
  - {name: recorder, defaultConfig: {tag: unspecified}}
  - {name: rec-stats, defaultConfig: {tag: stats}}
  - {name: rec-authz, defaultConfig: {tag: authz}}
  - {name: rec-authn, defaultConfig: {tag: authn-low}}
  - {name: rec-authn, defaultConfig: {tag: authn-high}, priority: 500}
  - {name: rec-authn, defaultConfig: {tag: authn-tie-first}, priority: 100}
""",
        tmp_path,
    )
    assert described(chain_of(snap, "chat")) == [
        "rec-authn:authn-high",
        "rec-authn:authn-low",
        "rec-authn:authn-tie-first",
        "rec-authz:authz",
        "rec-stats:stats",
        "recorder:unspecified",
    ]


def test_phase_and_priority_in_the_config_override_the_plugins_own(registered: None, tmp_path: Path) -> None:
    snap = snapshot(
        ROUTES
        + """
plugins:
  - {name: rec-authn, defaultConfig: {tag: demoted}, phase: STATS}
  - {name: recorder, defaultConfig: {tag: promoted}, phase: AUTHN, priority: 1}
  - {name: rec-stats, defaultConfig: {tag: stats-first}, priority: 200}
  - {name: rec-authz, defaultConfig: {tag: unspecified}, phase: UNSPECIFIED_PHASE}
""",
        tmp_path,
    )
    assert described(chain_of(snap, "chat")) == [
        "recorder:promoted",
        "rec-stats:stats-first",
        "rec-authn:demoted",
        "rec-authz:unspecified",
    ]


def test_the_built_in_plugins_default_order(tmp_path: Path) -> None:
    snap = snapshot(
        ROUTES
        + """
plugins:
  - {name: chatgpt-proxy, defaultConfig: {apiKey: sk-x, chatgptUri: "mock://v1/completions"}}
  - {name: key-auth, defaultConfig: {keys: [x-api-key], consumers: [{name: a, credential: k}]}}
  - {name: request-block, defaultConfig: {block_urls: [pw]}}
""",
        tmp_path,
    )
    # request-block (AUTHN 320) > key-auth (AUTHN 310) > chatgpt-proxy (AUTHZ 1).
    assert [p.name for p in chain_of(snap, "chat").plugins] == ["request-block", "key-auth", "chatgpt-proxy"]


# --- scoping: which object serves a request ------------------------------------------------


SCOPED = ROUTES + """
  - {name: third, path_prefix: /third/}
plugins:
  - name: recorder
    defaultConfig: {tag: default, color: blue}
    matchRules:
      - domain: ["*.example.com"]
        config: {tag: by-domain}
      - ingress: [chat]
        config: {tag: by-route}
      - ingress: [third]
        configDisable: true
        config: {tag: disabled-rule}
"""


def test_the_first_matching_rule_wins_and_its_config_is_laid_over_the_default(
    registered: None, tmp_path: Path
) -> None:
    snap = snapshot(SCOPED, tmp_path)
    by_route = chain_of(snap, "chat").plugins[0]
    assert (by_route.config.tag, by_route.config.color) == ("by-route", "blue")  # type: ignore[attr-defined]
    assert by_route.scope.rule == 1 and by_route.scope.has_rules
    # Both rules match: the domain rule comes first.
    both = chain_of(snap, "chat", "api.example.com").plugins[0]
    assert both.config.tag == "by-domain" and both.scope.rule == 0  # type: ignore[attr-defined]
    assert chain_of(snap, "other", "x.example.com").plugins[0].config.tag == "by-domain"  # type: ignore[attr-defined]
    # No rule matches: the default config.
    fallback = chain_of(snap, "other", "example.com").plugins[0]
    assert fallback.config.tag == "default" and fallback.scope.rule is None  # type: ignore[attr-defined]


def test_a_disabled_rule_is_skipped(registered: None, tmp_path: Path) -> None:
    snap = snapshot(SCOPED, tmp_path)
    assert described(chain_of(snap, "third")) == ["recorder:default"]


def test_default_config_disable_runs_the_plugin_only_where_a_rule_matches(
    registered: None, tmp_path: Path
) -> None:
    snap = snapshot(
        ROUTES
        + """
plugins:
  - name: recorder
    defaultConfigDisable: true
    defaultConfig: {color: green}
    matchRules:
      - ingress: [chat]
        config: {tag: only-chat}
""",
        tmp_path,
    )
    only = chain_of(snap, "chat").plugins
    assert len(only) == 1 and only[0].config.color == "green"  # type: ignore[attr-defined]
    assert chain_of(snap, "other").plugins == ()


async def test_key_auth_scoped_by_rules_through_the_snapshot(tmp_path: Path) -> None:
    snap = snapshot(
        ROUTES
        + """
plugins:
  - name: key-auth
    defaultConfig:
      keys: [x-api-key]
      consumers: [{name: alice, credential: ck-alice}, {name: bob, credential: ck-bob}]
    matchRules:
      - ingress: [chat]
        config: {allow: [alice]}
""",
        tmp_path,
    )
    on_chat = chain_of(snap, "chat").plugins[0]
    on_other = chain_of(snap, "other").plugins[0]
    assert isinstance(on_chat, KeyAuth) and isinstance(on_other, KeyAuth)
    # global_auth unset with rules: only the rule with `allow` authenticates.
    assert await run_request(on_other, make_exchange("GET", "/other/x")) is None
    refusal = await run_request(on_chat, make_exchange("GET", "/v1/x", {"x-api-key": "ck-bob"}))
    assert isinstance(refusal, GatewayError) and refusal.status == 403
    assert await run_request(on_chat, make_exchange("GET", "/v1/x", {"x-api-key": "ck-alice"})) is None


# --- failure_mode, through the gateway in-process ----------------------------------------

FAILING = """
storage: {{database: "sqlite:///./tollway.db"}}
providers: [{{id: mock, type: mock}}]
routes: [{{name: chat, path_prefix: /v1/, provider: mock}}]
plugins:
  - {{name: recorder, defaultConfig: {{tag: buggy, crash: true}}{mode}}}
"""


async def _status_with(failure_mode: str, tmp_path: Path) -> httpx.Response:
    text = FAILING.format(mode=f", failure_mode: {failure_mode}" if failure_mode else "")
    loaded = load_config_text(text, plugins=PLUGIN_MODELS, base_dir=tmp_path)
    runtime = Runtime(ConfigSource(None, text), loaded, access_log=AccessLog(io.StringIO()))
    await runtime.start()
    try:
        transport = httpx.ASGITransport(app=runtime.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw.local") as http:
            return await http.get("/v1/models")
    finally:
        await runtime.stop()


async def test_a_plugin_bug_costs_one_request_a_5xx_when_failure_mode_is_closed(
    registered: None, tmp_path: Path
) -> None:
    for mode in ("", "closed"):
        r = await _status_with(mode, tmp_path)
        assert r.status_code == 500, mode
        assert r.headers["x-tollway-reason"] == "recorder.internal_error"
        assert r.headers["x-request-id"]
        assert "error" in r.json()


async def test_failure_mode_open_lets_the_request_through_a_plugin_bug(registered: None, tmp_path: Path) -> None:
    r = await _status_with("open", tmp_path)
    assert r.status_code == 200


# --- the harness (tollway.testing.harness) itself ----------------------------------------------------


async def test_the_harness_builds_an_exchange_as_the_gateway_would() -> None:
    ex = make_exchange("post", "/v1/x", [("Host", "API.example.com:8443"), ("X-A", "1")], "q=a+b&k=%2F", b"{}")
    req = ex.request
    assert (req.method, req.path, req.host, req.body) == ("POST", "/v1/x", "api.example.com", b"{}")
    assert req.headers.get("x-a") == "1"
    assert req.query_params == [("q", "a b"), ("k", "/")]


async def test_the_harness_runs_a_terminal_plugin_against_the_in_memory_mock() -> None:
    plugin = make_plugin("chatgpt-proxy", {"apiKey": "sk-x", "promptParam": "text",
                                           "chatgptUri": "mock://v1/completions"})
    outcome = await run_request(plugin, make_exchange("GET", "/", query="text=Say,hello"))
    assert isinstance(outcome, Reply) and outcome.status == 200
    assert "Say,hello" in outcome.body.decode()
    missing = await run_request(plugin, make_exchange("GET", "/"))
    assert isinstance(missing, GatewayError) and missing.status == 400


async def test_the_harness_hides_the_body_from_the_request_headers_hook(registered: None) -> None:
    seen: list[bytes | None] = []

    class BodyPeek(Recorder):
        async def request_headers(self, ex: Exchange) -> Reply | None:
            seen.append(ex.request.body)
            return None

        async def request_body(self, ex: Exchange) -> Reply | None:
            seen.append(ex.request.body)
            return None

    plugin = BodyPeek(RecorderConfig(), recorder("x").scope, make_services())
    assert await run_request(plugin, make_exchange("POST", "/", body=b"payload")) is None
    assert seen == [None, b"payload"]
