"""ai-prompt-decorator (default phase, priority 450): messages added before and after a
request's own, and text replaced in them, for chat, Anthropic messages and the
Responses API (``prompt_shapes``: system messages go where each API keeps its
instructions).

Higress's fields: ``prepend`` and ``append`` (lists of ``{role, content}``), ``replace``
(``{pattern, replacement, on_role, regex}``, applied in order to every string content
of the final request, the added messages included; content given as parts is left as
it is). The rewritten body goes upstream (``Exchange.upstream_json``); the client's own
request is never edited. Calls of other APIs, other methods, or without a JSON object
body pass untouched.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from tollway.exchange import Exchange, Reply
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.plugins.prompt_shapes import add_messages, map_texts, note_added_turns, shaped_body
from tollway.services import Services


class Message(PluginConfig):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class Replacement(PluginConfig):
    pattern: str = Field(min_length=1)
    replacement: str = ""
    # Only messages of this role ("" or unset: every role; instructions count as system).
    on_role: str = ""
    regex: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> Replacement:
        if self.regex:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        return self


class AiPromptDecoratorConfig(PluginConfig):
    prepend: list[Message] = []
    append: list[Message] = []
    replace: list[Replacement] = []


class AiPromptDecorator(Plugin[AiPromptDecoratorConfig]):
    name = "ai-prompt-decorator"
    phase = Phase.UNSPECIFIED
    priority = 450
    config_model = AiPromptDecoratorConfig

    def __init__(self, config: AiPromptDecoratorConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.prepend = [m.model_dump() for m in config.prepend]
        self.append = [m.model_dump() for m in config.append]
        self.replacements = [
            (re.compile(r.pattern if r.regex else re.escape(r.pattern)), r.replacement, r.on_role, r.regex)
            for r in config.replace
        ]

    def _edit(self, role: str, text: str) -> str:
        for pattern, replacement, on_role, regex in self.replacements:
            if not on_role or on_role == role:
                text = pattern.sub(replacement if regex else replacement.replace("\\", "\\\\"), text)
        return text

    async def request_body(self, ex: Exchange) -> Reply | None:
        body = shaped_body(ex)
        if body is None:
            return None
        if self.prepend or self.append:
            body = add_messages(ex.api, body, self.prepend, self.append)
            note_added_turns(ex, ex.api, self.prepend, self.append)
        if self.replacements:
            body = map_texts(ex.api, body, self._edit)
        ex.upstream_json = body
        return None


__all__ = ["AiPromptDecorator", "AiPromptDecoratorConfig"]
