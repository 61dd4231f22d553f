"""The chains a config snapshot builds (gateway/snapshot.py, SPEC §2 `plugins`).

Order: phase (AUTHN > AUTHZ > STATS > UNSPECIFIED), then priority (highest first), as the
plugin declares them or the config overrides them. Which plugin object serves a request: the
first matching rule (by route name under ``ingress``, or by host under ``domain``), its
config laid over the default, else the default unless ``defaultConfigDisable``. All without
sockets.
"""

from __future__ import annotations

from pathlib import Path

from tollway.chain import Chain, FailureLog
from tollway.config.load import load_config_text
from tollway.errors import GatewayError
from tollway.gateway.snapshot import Snapshot
from tollway.plugins.key_auth import KeyAuth
from tollway.plugins.registry import PLUGIN_MODELS
from tollway.routing.routes import Route
from tollway.testing.harness import make_exchange, make_services, run_request


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


SCOPED = (
    ROUTES
    + """
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
)


def test_the_first_matching_rule_wins_and_its_config_is_laid_over_the_default(registered: None, tmp_path: Path) -> None:
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


def test_default_config_disable_runs_the_plugin_only_where_a_rule_matches(registered: None, tmp_path: Path) -> None:
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


def models(snap: Snapshot, route: Route, model: str) -> tuple[str, ...]:
    return tuple(call.model for call in snap.upstream_calls(route, model))


def test_the_upstream_models_are_every_failover_providers_mapping_in_order(tmp_path: Path) -> None:
    # A budget holds a call at the dearest of them: a failover sends it as another model.
    snap = snapshot(
        """
providers:
  - {id: a, type: openai, apiTokens: [sk], modelMapping: {"gpt-*": cheap}}
  - {id: b, type: openai, apiTokens: [sk], modelMapping: {"gpt-4o": dear}}
  - {id: c, type: openai, apiTokens: [sk], modelMapping: {"gpt-*": cheap}}
routes:
  - {name: chat, path_prefix: /v1/, providers: [a, b, c]}
  - {name: claude, path_prefix: /c/, providers: [a], model_providers: {"claude-*": c}}
""",
        tmp_path,
    )
    chat, claude = snap.routes.by_name["chat"], snap.routes.by_name["claude"]
    assert models(snap, chat, "gpt-4o") == ("cheap", "dear")
    assert models(snap, chat, "gpt-4o-mini") == ("cheap", "gpt-4o-mini")
    assert models(snap, claude, "claude-x") == ("claude-x",)  # c alone serves it
    assert models(snap, claude, "gpt-4o") == ("cheap",)
    assert snap._providers.upstream_model(chat, "gpt-4o") == "cheap"  # ai-cache's key: the first


def test_the_upstream_model_memo_is_bounded_and_answers_right_past_its_bound(tmp_path: Path) -> None:
    # Model names come from clients: a client inventing a new one per call must not grow
    # the snapshot's memory without end, and names past the bound are still mapped.
    from tollway.gateway import snapshot as module

    snap = snapshot(
        """
providers:
  - {id: p, type: openai, apiTokens: [sk], modelMapping: {"gpt-*": mapped-gpt}}
routes:
  - {name: chat, path_prefix: /v1/, provider: p}
""",
        tmp_path,
    )
    route = snap.routes.by_name["chat"]
    memo = snap._providers._upstream
    for i in range(module._MODEL_MEMO_LIMIT + 500):
        assert models(snap, route, f"gpt-{i}") == ("mapped-gpt",)
    assert len(memo) == module._MODEL_MEMO_LIMIT
    assert models(snap, route, "other-model") == ("other-model",)
    assert models(snap, route, f"gpt-{module._MODEL_MEMO_LIMIT + 1}") == ("mapped-gpt",)
    assert len(memo) == module._MODEL_MEMO_LIMIT
