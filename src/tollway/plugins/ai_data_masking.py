"""ai-data-masking (AUTHN, 991): sensitive values never reach the model, and the answer
still reads as if they had.

Before the prompt leaves, every text the model will read (``masking.bodies``: every
string of the JSON body of every API but the stateful ones, ``protocols.apis.carries_prompt``:
chat, completions, embeddings, moderations, Anthropic messages and count_tokens, the
responses API, Gemini's own generateContent and its kin, images, speech, paths no one
knows; tool names and descriptions, the ``user`` field) is scanned, as sent
and normalised (NFKC, zero-width characters and soft hyphens removed: ``masking.masker``):
a deny word (or, with ``system_deny``, a private key) refuses the whole request; a
``replace_roles`` match is replaced as Higress does (``replace`` with ``value``, ``hash``
with the MD5 hex); a built-in detector's match (``detectors``: e-mail, phone, card,
Chinese resident ID, US SSN, IPv4, API keys) becomes a placeholder like ``[EMAIL_1]``.
The masked body goes upstream as ``Exchange.upstream_json``; the client's request is
untouched. The answer to a request it read is checked for deny words as the request
was (whole: the refusal instead; streamed: the stream ends with an error event, a word
split between events caught too). In the answer, placeholders (and ``restore: true``
values) are turned back
into the originals, in whole bodies and across stream events (chat, completions,
Anthropic messages, the responses API and Gemini's streamGenerateContent).

Higress fields, as Higress: ``deny_openai`` (the protocol's prompt texts, for every API
above; Higress reads OpenAI chat only), ``deny_jsonpath``, ``deny_raw``
(every string in the body but the model name), ``system_deny``, ``deny_code``,
``deny_message``, ``deny_raw_message``, ``deny_content_type``, ``deny_words``,
``replace_roles`` (``regex`` with grok names, ``type``, ``value``, ``restore``),
``skip_response``. Differences: ``deny_jsonpath`` and ``deny_raw`` add to the protocol's
fields (Higress uses them only for bodies that are not OpenAI chat); the rules are one
leftmost-first pass (Higress applies them one after another, so a later rule can match
inside an earlier one's replacement); ``system_deny`` is Tollway's list (private key
blocks), not Higress's Chinese dictionary; a ``deny_code`` of 400 or more answers with an
error in the client's protocol (reason ``ai-data-masking.denied``, code
``request_blocked``) instead of a chat answer with an error status; restoring across
stream events never fails (Higress: "may not be restored").

Tollway's additions: ``detectors`` (which built-ins run; all by default, ``[]`` for none)
and ``mode``: ``mask`` (default) or ``deny``, which refuses, like a deny word, any
request in which a built-in detector finds something instead of masking it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

import orjson
from pydantic import field_validator, model_validator

from tollway.errors import BadRequest, Forbidden
from tollway.exchange import Exchange, Reply, StateKey
from tollway.masking.bodies import (
    SKIPPED_KEYS,
    JsonPathError,
    check_answer,
    map_all_but_model,
    map_answer,
    map_path,
    map_request,
    parse_jsonpath,
)
from tollway.masking.masker import Denied, Masker, MaskSession, Role
from tollway.masking.refusal import raw_refusal, refusal
from tollway.masking.rules import RuleError, check_value, compile_user_regex
from tollway.masking.streams import AnswerStream
from tollway.masking.vault import Vault
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.protocols.apis import PROMPT_APIS, Api, carries_prompt
from tollway.protocols.form import map_text_fields, map_urlencoded_fields
from tollway.protocols.sse import SseEvent
from tollway.services import Services

log = logging.getLogger("tollway.plugins.ai_data_masking")

# A request body this large is masked on a worker thread. Masking is Python and regular
# expressions, ~0.1-0.4 s a megabyte of prompt dense with things to mask: on the event
# loop that would stall every other call as long. On a thread the loop still gets the
# interpreter between steps (3 MB of e-mail addresses: masked in 1.1 s, the loop's longest
# wait 60 ms). Smaller bodies stay on the loop, where a thread's hand-off would cost more.
THREAD_FROM_BYTES = 256 * 1024

DEFAULT_DENY_MESSAGE = "Sensitive words found in the question or answer have been blocked"
# The names of ``masking.detectors.DETECTORS``, spelled out for the config schema.
Detector = Literal["email", "phone", "card", "cn_id", "us_ssn", "ipv4", "api_key"]


class ReplaceRole(PluginConfig):
    regex: str
    type: Literal["replace", "hash"]
    value: str = ""
    restore: bool = False

    @model_validator(mode="after")
    def _check(self) -> ReplaceRole:
        try:
            pattern = compile_user_regex(self.regex)
            check_value(self.value, pattern)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
        if pattern.fullmatch("") is not None:
            raise ValueError(f"{self.regex!r} matches the empty string")
        return self

    def compile(self) -> Role:
        return Role(compile_user_regex(self.regex), self.type, self.value, self.restore)


class AiDataMaskingConfig(PluginConfig):
    deny_openai: bool = True
    deny_jsonpath: list[str] = []
    deny_raw: bool = False
    system_deny: bool = False
    deny_code: int = 200
    deny_message: str = DEFAULT_DENY_MESSAGE
    deny_raw_message: str = orjson.dumps({"errmsg": DEFAULT_DENY_MESSAGE}).decode()
    deny_content_type: str = "application/json"
    deny_words: list[str] = []
    replace_roles: list[ReplaceRole] = []
    skip_response: bool = False
    detectors: list[Detector] = list(get_args(Detector))
    mode: Literal["mask", "deny"] = "mask"

    @field_validator("deny_jsonpath")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            try:
                parse_jsonpath(path)
            except JsonPathError as exc:
                raise ValueError(str(exc)) from None
        return paths

    @field_validator("deny_code")
    @classmethod
    def _status(cls, code: int) -> int:
        if not 200 <= code <= 599 or code in (204, 205, 304):
            raise ValueError("deny_code must be a final HTTP status with a body (200-599, not 204, 205 or 304)")
        return code


@dataclass(slots=True)
class _Call:
    """What one call needs on the way back: its tokens, the check of the answer's texts
    (deny words), and the stream's restorer."""

    vault: Vault
    check: Callable[[str], None] | None = None
    keep: int = 0
    stream: AnswerStream | None = None

    def answer_stream(self) -> AnswerStream:
        if self.stream is None:
            self.stream = AnswerStream(self.vault, self.check, self.keep)
        return self.stream


_CALL: StateKey[_Call] = StateKey("ai-data-masking.call")
# A form's parts that are not text a model reads: the model and enumerations, and the
# uploads of the images, audio and video APIs (every other part is read, file or not).
_NOT_FORM_TEXT = SKIPPED_KEYS | {"file", "image", "image[]", "mask", "input_reference"}


class AiDataMasking(Plugin[AiDataMaskingConfig]):
    name = "ai-data-masking"
    phase = Phase.AUTHN
    priority = 991
    config_model = AiDataMaskingConfig

    def __init__(self, config: AiDataMaskingConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.masker = Masker(
            [role.compile() for role in config.replace_roles],
            config.detectors,
            config.deny_words,
            system_deny=config.system_deny,
            deny_detected=config.mode == "deny",
        )
        self.paths = tuple(parse_jsonpath(p) for p in config.deny_jsonpath)

    async def request_body(self, ex: Exchange) -> Reply | None:
        req = ex.request
        # Any method: a body goes upstream whatever the method it came with (a GET with
        # a prompt in its body is as much a way out as a POST). A body a plugin made
        # before this hook (chatgpt-proxy's, from the query string) goes upstream too.
        built = ex.upstream_json
        if not req.body and built is None:
            return None
        api = ex.api
        outgoing = orjson.dumps(built) if built is not None else req.body or b""
        session = self.masker.session(outgoing)
        offload = len(outgoing) >= THREAD_FROM_BYTES
        try:
            parsed = req.json() if built is None else built
        except BadRequest:  # not JSON: a form's text fields, and deny_raw's look at it as text
            form: bytes | None = None
            try:
                if self.config.deny_openai and carries_prompt(api, ex.api_path):
                    content_type, sent = req.headers.get("content-type") or "", outgoing

                    def masked_form() -> bytes | None:
                        form = map_text_fields(content_type, sent, session.mask, _NOT_FORM_TEXT)
                        if form is None:
                            form = map_urlencoded_fields(content_type, sent, session.mask, _NOT_FORM_TEXT)
                        return form

                    form = await asyncio.to_thread(masked_form) if offload else masked_form()
                    if form is not None and form is not sent:  # (a form: an image edit, a transcription; urlencoded)
                        ex.upstream_form = form
                if self.config.deny_raw:  # every byte, the files' too, checked as text
                    raw = outgoing.decode("utf-8", "replace")
                    await asyncio.to_thread(session.mask, raw) if offload else session.mask(raw)
            except Denied as denied:
                return self._deny(ex, api, denied)
            if form is not None:
                self._answer_checked(ex, session)
            return None
        body = ex.upstream_json if ex.upstream_json is not None else parsed
        if not isinstance(body, dict):
            return None
        read = self.config.deny_openai and carries_prompt(api, ex.api_path)

        def masked() -> dict[str, Any]:
            new = body
            if read:
                new = map_request(api, new, session.mask)
            for steps in self.paths:
                new = map_path(new, steps, session.mask)
            if self.config.deny_raw:
                new = map_all_but_model(new, session.mask)
            return new

        try:
            new = await asyncio.to_thread(masked) if offload else masked()
        except Denied as denied:
            return self._deny(ex, api, denied)
        if new is not body:
            ex.upstream_json = new
        self._answer_checked(ex, session, read or bool(self.paths) or self.config.deny_raw)
        return None

    def _answer_checked(self, ex: Exchange, session: MaskSession, read: bool = True) -> None:
        """After a request was masked: its answer to be restored, and checked for deny
        words as the request was (Higress) when the request was ``read``."""
        if self.config.skip_response:
            return
        if self.masker.refuses and read:
            ex.put(_CALL, _Call(session.vault, self.masker.check, self.masker.longest_refused))
        elif session.vault.tokens:
            ex.put(_CALL, _Call(session.vault))

    def _deny(self, ex: Exchange, api: Api, denied: Denied) -> Reply:
        cfg = self.config
        ex.blocked_by = self.name
        ex.reason = "ai-data-masking.denied"
        log.debug("request %s denied: %s", ex.request_id, denied)
        protocol = cfg.deny_openai and api in PROMPT_APIS
        if cfg.deny_code >= 400:
            raw = None if protocol else _json_object(cfg.deny_raw_message)
            raise Forbidden(cfg.deny_message, reason=ex.reason, status=cfg.deny_code, code="request_blocked", body=raw)
        reply = None
        if protocol:
            reply = refusal(
                api,
                stream=ex.stream,
                model=ex.model_requested or "",
                message=cfg.deny_message,
                request_id=ex.request_id,
                status=cfg.deny_code,
            )
        return reply or raw_refusal(cfg.deny_raw_message, cfg.deny_content_type, cfg.deny_code)

    async def response_body(self, ex: Exchange, body: bytes) -> bytes:
        """The answer with its originals back; a deny word in it (as the client would read
        it) gives the refusal instead: the request's, in the body (the provider's status
        stays), or the error with ``deny_code`` when that is 400 or more."""
        call = ex.get(_CALL)
        if call is None or ex.status >= 300 or not body:
            return body
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        restored = map_answer(answer, call.vault.restore, call.vault.restore_json) if call.vault.tokens else answer
        if call.check is not None:
            try:
                check_answer(restored, call.check)
            except Denied as denied:
                return self._deny(ex, ex.api, denied).body
        return body if restored is answer else orjson.dumps(restored)

    def stream_event(self, ex: Exchange, event: SseEvent) -> list[SseEvent]:
        call = ex.get(_CALL)
        if call is None:
            return [event]
        try:
            return call.answer_stream().event(event)
        except Denied as denied:
            raise self._denied_mid_stream(ex, denied) from None

    def stream_end(self, ex: Exchange) -> list[SseEvent]:
        call = ex.get(_CALL)
        if call is None:
            return []
        try:
            return call.answer_stream().end()
        except Denied as denied:
            raise self._denied_mid_stream(ex, denied) from None

    def _denied_mid_stream(self, ex: Exchange, denied: Denied) -> Forbidden:
        """A deny word in a streamed answer: the stream ends there with an error event in
        the client's protocol (Higress drops the rest of the stream without a word)."""
        ex.blocked_by = self.name
        ex.reason = "ai-data-masking.denied"
        log.debug("answer to %s denied: %s", ex.request_id, denied)
        cfg = self.config
        return Forbidden(cfg.deny_message, reason=ex.reason, status=cfg.deny_code, code="request_blocked")


def _json_object(text: str) -> bytes | None:
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(parsed) if isinstance(parsed, dict) else None
