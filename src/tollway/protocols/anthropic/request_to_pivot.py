"""Anthropic Messages requests → the pivot: what an Anthropic client's request becomes
before it goes to any provider. The mapping of ``request_from_pivot`` runs
backwards:

- ``system`` (a string, or text blocks joined by newlines) → one string ``system``
  message, and so does a ``system`` message within ``messages``, where it stands; a
  user turn that is one text block → a string;
- user blocks: ``text``; ``image`` (base64 → ``data:`` URL, url source → its URL) →
  ``image_url``; a base64 ``document`` → a ``file`` part, a text document → text;
  ``tool_result`` blocks → ``tool`` messages before the rest of the turn (their text
  and text documents as its text; their images and PDFs, which OpenAI tool messages
  cannot hold, follow in a user message; any other block is refused);
- assistant ``tool_use`` blocks → ``tool_calls`` (``input`` as JSON ``arguments``);
- ``stop_sequences`` → ``stop``; ``max_tokens`` → ``max_completion_tokens``;
  ``temperature``, ``top_p``; ``tools`` → function tools (``strict`` kept, a field
  OpenAI lacks such as ``input_examples`` refused); ``tool_choice``
  ``auto|any|tool|none`` → ``auto|required|{function}|none``,
  ``disable_parallel_tool_use`` → ``parallel_tool_calls: false``;
  ``metadata.user_id`` → ``user`` (its SHA-256 when over OpenAI's 64 characters); a
  stream asks for ``stream_options.include_usage`` so the client gets its usage.
- ``thinking`` ``{type: enabled, budget_tokens}`` → ``reasoning_effort`` (up to 1024
  tokens low, up to 8192 medium, more high: the budgets ``request_from_pivot`` uses the
  other way); ``disabled``, ``adaptive`` (Claude decides) and ``between_tools`` → none
  (the provider's default); else ``output_config.effort`` → ``reasoning_effort``.
  Structured output (``output_config.format``, or the beta's ``output_format``) →
  ``response_format`` ``json_schema``.
- Dropped, changing nothing of the answer's content: thinking blocks in the history (a
  provider of another protocol cannot take them back), ``cache_control``,
  ``service_tier``, ``speed``, ``diagnostics``, the account fields ``workspace_id`` and
  ``user_profile_id``. Refused (``TranslationError``, the gateway's 400
  ``unsupported_parameter``): ``top_k``, ``container``, ``context_management`` edits
  other than clearing thinking (which the history's dropped thinking blocks do),
  ``mcp_servers``, ``inference_geo`` (where the model may run: another provider cannot
  promise it), any other field this module does not know, server tools, blocks other
  than the above, image or document sources other than base64/url/text, and a last
  assistant turn with text (a prefill: no other provider continues it).
"""

from __future__ import annotations

import hashlib
from typing import Any

from tollway.protocols import pivot
from tollway.protocols.anthropic.response import tool_call_to_pivot
from tollway.protocols.codec import Json, TranslationError
from tollway.protocols.openai.wire import take_sampling

# Messages fields this module maps, and those it drops as changing nothing of the answer;
# any other field is refused, so that none vanishes on the way.
_MAPPED = frozenset(
    {
        "model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p",
        "stream", "tools", "tool_choice", "metadata", "thinking", "output_format", "output_config",
        "context_management",
    }
)  # fmt: skip
_DROPPED = frozenset({"cache_control", "service_tier", "speed", "diagnostics", "workspace_id", "user_profile_id"})
# The longest ``user`` OpenAI takes.
_USER_MAX = 64
# Thinking that asks for no particular effort: the provider's default.
_DEFAULT_THINKING = frozenset({"disabled", "adaptive", "between_tools"})
_EFFORTS = frozenset({"low", "medium", "high", "xhigh", "max"})


def _image_part(block: Json, where: str) -> Json:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        url = pivot.data_url(str(source.get("media_type")), str(source.get("data")))
    elif isinstance(source, dict) and source.get("type") == "url" and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise TranslationError(f"{where}.source: only base64 and url image sources can be translated")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_parts(block: Json, where: str) -> list[Json]:
    source = block.get("source")
    # A part has no title or context of its own: they go as text before the document's
    # content, so the model still reads them (a file keeps its title as its name too).
    heading = [block[k] for k in ("title", "context") if isinstance(block.get(k), str) and block[k]]
    if isinstance(source, dict) and source.get("type") == "text" and isinstance(source.get("data"), str):
        return [{"type": "text", "text": "\n\n".join([*heading, source["data"]])}]
    if isinstance(source, dict) and source.get("type") == "base64":
        media = str(source.get("media_type"))
        file: Json = {"file_data": pivot.data_url(media, str(source.get("data")))}
        file["filename"] = block["title"] if isinstance(block.get("title"), str) else "document.pdf"
        lead = [{"type": "text", "text": "\n\n".join(heading)}] if heading else []
        return [*lead, {"type": "file", "file": file}]
    raise TranslationError(f"{where}.source: only base64 and text documents can be translated")


def _tool_message(block: Json, where: str, images: list[Json]) -> Json:
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for j, inner in enumerate(content):
            kind = inner.get("type") if isinstance(inner, dict) else None
            iw = f"{where}.content[{j}]"
            if kind == "text":
                texts.append(str(inner.get("text", "")))
            elif kind == "image":
                # OpenAI tool messages hold text only: the images follow in a user turn.
                images.append(_image_part(inner, iw))
            elif kind == "document":
                # A text document is the tool's text; a PDF follows in the user turn.
                for part in _document_parts(inner, iw):
                    if part["type"] == "text":
                        texts.append(part["text"])
                    else:
                        images.append(part)
            else:
                raise TranslationError(f"{iw}: a tool_result block of type {kind!r} cannot be translated")
        text = "".join(texts)
    else:
        text = content if isinstance(content, str) else ""
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _user_to_pivot(content: Any, where: str) -> list[Json]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, list):
        raise TranslationError(f"{where}.content must be a string or a list of blocks")
    tools: list[Json] = []
    parts: list[Json] = []
    images: list[Json] = []
    for j, block in enumerate(content):
        bw = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append(_image_part(block, bw))
        elif kind == "document":
            parts.extend(_document_parts(block, bw))
        elif kind == "tool_result":
            tools.append(_tool_message(block, bw, images))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise TranslationError(f"{bw}: block of type {kind!r} cannot be translated")
    out = list(tools)
    if not images and len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif images or parts:
        out.append({"role": "user", "content": images + parts})
    return out


def _assistant_to_pivot(content: Any, where: str) -> Json:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise TranslationError(f"{where}.content must be a string or a list of blocks")
    texts: list[str] = []
    calls: list[Json] = []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            calls.append(tool_call_to_pivot(block))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise TranslationError(f"{where}.content[{j}]: block of type {kind!r} cannot be translated")
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _system_to_pivot(system: Any) -> list[Json]:
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if isinstance(system, list):
        # One string: many OpenAI-compatible providers take no content arrays in system
        # messages, and the blocks' only other content (cache_control) is dropped anyway.
        texts = [
            b["text"]
            for b in system
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
        return [{"role": "system", "content": "\n".join(texts)}] if texts else []
    if system is None:
        return []
    raise TranslationError("system must be a string or a list of text blocks")


# A client tool's fields that are translated (``strict`` → ``function.strict``), or
# dropped: ``cache_control`` as the module says, and ``eager_input_streaming`` (how finely
# a stream splits the tool's input, which changes no answer: an OpenAI stream sends its
# arguments in pieces anyway; the Vercel AI SDK sets it on every streamed tool). Any
# other (``input_examples``, ``defer_loading``) is refused.
_TOOL_FIELDS = frozenset(
    {"type", "name", "description", "input_schema", "strict", "cache_control", "eager_input_streaming"}
)


def _tools_to_pivot(tools: Any) -> list[Json]:
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "custom") != "custom" or "name" not in tool:
            raise TranslationError(f"tools[{i}]: only client tools (name, input_schema) can be translated")
        unknown = sorted(set(tool) - _TOOL_FIELDS)
        if unknown:
            raise TranslationError(f"tools[{i}].{unknown[0]} cannot be translated")
        fn: Json = {"name": tool["name"]}
        if isinstance(tool.get("description"), str):
            fn["description"] = tool["description"]
        fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
        if isinstance(tool.get("strict"), bool):
            fn["strict"] = tool["strict"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice_to_pivot(choice: Any) -> tuple[Any, bool]:
    """(OpenAI tool_choice or None, parallel tool use disabled)."""
    if not isinstance(choice, dict):
        return None, False
    kind = choice.get("type")
    serial = choice.get("disable_parallel_tool_use") is True
    if kind == "auto":
        return "auto", serial
    if kind == "any":
        return "required", serial
    if kind == "none":
        return "none", False
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}, serial
    raise TranslationError(f"tool_choice.type {kind!r} cannot be translated")


def to_pivot(body: Json) -> Json:
    """An Anthropic Messages request → an OpenAI chat-completions request."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise TranslationError("messages must be a list of message objects")
    out_messages = _system_to_pivot(body.get("system"))
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if m.get("role") == "user":
            out_messages.extend(_user_to_pivot(m.get("content"), where))
        elif m.get("role") == "assistant":
            out_messages.append(_assistant_to_pivot(m.get("content"), where))
        elif m.get("role") == "system":
            # A system message within the conversation (Anthropic's beta; Claude Code
            # sends its reminders so): a system message at the same place.
            out_messages.extend(_system_to_pivot(m.get("content")))
        else:
            raise TranslationError(f"{where}.role must be user, assistant or system")
    last = out_messages[-1] if out_messages else None
    if last is not None and last.get("role") == "assistant" and last.get("content"):
        # A prefill: Claude continues the text of a last assistant turn; an OpenAI or
        # Gemini model answers anew after it, so the answer would mean something else.
        raise TranslationError(
            f"messages[{len(messages) - 1}]: a last assistant turn with text (a prefill, which Claude continues) "
            "cannot be sent to this provider: its model would answer anew rather than continue it"
        )
    chat: Json = {"model": body.get("model"), "messages": out_messages}
    if isinstance(body.get("max_tokens"), int):
        # OpenAI's current name: its reasoning models refuse max_tokens (as Responses
        # requests do, max_output_tokens becomes this too).
        chat["max_completion_tokens"] = body["max_tokens"]
    if body.get("stop_sequences"):
        chat["stop"] = list(body["stop_sequences"])
    take_sampling(body, chat)
    if body.get("tools"):
        chat["tools"] = _tools_to_pivot(body["tools"])
        choice, serial = _tool_choice_to_pivot(body.get("tool_choice"))
        if choice is not None:
            chat["tool_choice"] = choice
        if serial:
            chat["parallel_tool_calls"] = False
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        chat["user"] = _user(metadata["user_id"])
    _refuse_what_has_no_equivalent(body)
    _check_context_management(body.get("context_management"))
    output_config = body.get("output_config")
    if output_config is not None and not isinstance(output_config, dict):
        raise TranslationError("output_config must be an object")
    output_config = output_config or {}
    for key in output_config:
        if key not in ("format", "effort"):
            raise TranslationError(f"output_config.{key} cannot be sent to this provider")
    effort = _effort(body.get("thinking"), output_config.get("effort"))
    if effort is not None:
        chat["reasoning_effort"] = effort
    response_format = _response_format(output_config.get("format"), "output_config.format")
    response_format = response_format or _response_format(body.get("output_format"), "output_format")
    if response_format is not None:
        chat["response_format"] = response_format
    return chat


def _user(user_id: str) -> str:
    """Anthropic's ``metadata.user_id`` as OpenAI's ``user``, which OpenAI caps at 64
    characters: a longer id (Claude Code sends a JSON object of its device and session)
    becomes its SHA-256 in hex, the same opaque id for the same user, as ``user`` is
    meant to be."""
    if len(user_id) <= _USER_MAX:
        return user_id
    return hashlib.sha256(user_id.encode()).hexdigest()


def _check_context_management(management: Any) -> None:
    """Edits that clear old thinking blocks ask for what a translated call does anyway
    (the history's thinking blocks are not sent); any other edit (clearing old tool
    results) would change the prompt the provider sees, and is refused."""
    if management is None:
        return
    edits = management.get("edits") if isinstance(management, dict) else None
    if not isinstance(edits, list) or set(management) - {"edits"}:
        raise TranslationError("context_management cannot be sent to this provider (only clear_thinking edits)")
    for i, edit in enumerate(edits):
        kind = edit.get("type") if isinstance(edit, dict) else None
        if not isinstance(kind, str) or not kind.startswith("clear_thinking_"):
            raise TranslationError(f"context_management.edits[{i}] of type {kind!r} cannot be sent to this provider")


def _refuse_what_has_no_equivalent(body: Json) -> None:
    for field, value in body.items():
        if value is not None and field not in _MAPPED and field not in _DROPPED:
            raise TranslationError(f"{field} cannot be sent to this provider (OpenAI's protocol has no equivalent)")


def _response_format(output_format: Any, where: str) -> Json | None:
    """Anthropic's structured output as OpenAI's ``response_format`` (None: none asked)."""
    if output_format is None:
        return None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema":
        raise TranslationError(f"{where} must be {{type: json_schema, schema}}")
    schema = output_format.get("schema")
    if not isinstance(schema, dict):
        raise TranslationError(f"{where}.schema must be a JSON schema object")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def _effort(thinking: Any, effort: Any) -> str | None:
    """Anthropic's thinking budget (else ``output_config.effort``) as OpenAI's
    ``reasoning_effort``."""
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int) or budget <= 1024:
                return "low"
            return "medium" if budget <= 8192 else "high"
        if kind not in _DEFAULT_THINKING:
            raise TranslationError(f"thinking of type {kind!r} cannot be sent to this provider")
    if effort is None:
        return None
    if effort not in _EFFORTS:
        raise TranslationError(f"output_config.effort {effort!r} cannot be sent to this provider")
    return str(effort)
