"""ai-prompt-template (default phase, priority 500): a request that names a template
becomes that template filled in.

Higress's fields: ``templates`` (``[{name, template}]``, ``template`` a request body,
``{"model", "messages"}`` for chat). A request ``{"template": NAME, "properties": {…}}``
to chat, Anthropic messages or the Responses API becomes the named template with each
``{{key}}`` in its strings replaced by the property's value (placeholders without a
property stay as written); the request's other fields (``stream``, ``max_tokens``, …)
are laid over it, a Tollway addition (Higress drops them), all but an empty
``messages`` or ``input`` (which the SDKs make a client send). The filled body goes
upstream, and its model and ``stream`` flag become the call's, so routing, mapping and
the plugins after this one see the request the model gets.

A request naming no template passes untouched; one naming a template that does not
exist is a 400 ``gateway.bad_request`` naming it.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from pydantic import Field, model_validator

from tollway.errors import BadRequest
from tollway.exchange import Exchange, Reply
from tollway.plugin import Phase, Plugin, PluginConfig, Scope
from tollway.plugins.prompt_shapes import shaped_body
from tollway.services import Services

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_REQUEST_ONLY = ("template", "properties")


class Template(PluginConfig):
    name: str = Field(min_length=1)
    template: dict[str, Any]


class AiPromptTemplateConfig(PluginConfig):
    templates: list[Template] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> AiPromptTemplateConfig:
        names = [t.name for t in self.templates]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"templates: the name {twice[0]!r} is given twice")
        return self


def _no_turns(name: str, value: Any) -> bool:
    """An empty ``messages`` or ``input``: what an SDK that requires the field sends with
    a template (``messages=[]``), not a prompt to put in the template's place."""
    return name in _TURNS and value in ([], "", None)


_TURNS = frozenset({"messages", "input"})


def _filled(value: Any, properties: dict[str, str]) -> Any:
    """``value`` with every ``{{key}}`` in its strings replaced (no recursion limit is
    needed: templates come from the config, which is parsed with one)."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: properties.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: _filled(v, properties) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, properties) for v in value]
    return value


class AiPromptTemplate(Plugin[AiPromptTemplateConfig]):
    name = "ai-prompt-template"
    phase = Phase.UNSPECIFIED
    priority = 500
    config_model = AiPromptTemplateConfig

    def __init__(self, config: AiPromptTemplateConfig, scope: Scope, services: Services) -> None:
        super().__init__(config, scope, services)
        self.templates = {t.name: t.template for t in config.templates}

    async def request_body(self, ex: Exchange) -> Reply | None:
        body = shaped_body(ex)
        if body is None:
            return None
        name = body.get("template")
        if name is None:
            if "template" in body:  # ``"template": null``: no template, and nothing the provider knows
                ex.upstream_json = {k: v for k, v in body.items() if k not in _REQUEST_ONLY}
            return None
        template = self.templates.get(name) if isinstance(name, str) else None
        if template is None:
            raise BadRequest(f"no prompt template named {name!r}", reason="gateway.bad_request")
        given = body.get("properties")
        if given is not None and not isinstance(given, dict):
            raise BadRequest("properties must be an object", reason="gateway.bad_request")
        # Non-strings as their JSON text (``true``, ``42``, ``null``), as Higress writes
        # them: Python's ``str`` would say ``True`` and ``None``.
        properties = {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in (given or {}).items()}
        filled = _filled(template, properties)
        filled.update((k, v) for k, v in body.items() if k not in _REQUEST_ONLY and not _no_turns(k, v))
        ex.upstream_json = filled
        model = filled.get("model")
        if isinstance(model, str) and model:
            ex.model_requested = model
        ex.stream = filled.get("stream") is True
        return None


__all__ = ["AiPromptTemplate", "AiPromptTemplateConfig"]
