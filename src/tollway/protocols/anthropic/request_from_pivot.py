"""Pivot → Anthropic Messages requests: what a Claude provider receives for an OpenAI
chat-completions request.

- ``system`` and ``developer`` messages → top-level ``system`` (a string when there is
  one string system message, else text blocks; Anthropic has no mid-conversation system
  turn, so later ones are hoisted too);
- user content parts → blocks: ``image_url`` with a ``data:`` URL → base64 ``image``,
  an http(s) URL → ``url`` image source; a PDF ``file`` part (``file_data``) → base64
  ``document``;
- assistant ``thinking_blocks`` (the signed thinking a Claude answer gave, see
  ``tollway.protocols.thinking_blocks``) → the turn's first blocks, exactly as given
  (Claude refuses a tool-use turn whose thinking is missing or changed); an assistant
  ``reasoning_content`` without them is not sent (Claude takes no unsigned thinking);
- assistant ``tool_calls`` → ``tool_use`` blocks (``arguments`` parsed as JSON);
  ``tool`` messages → ``tool_result`` blocks (their parts mapped as a user message's:
  text, images, PDF files; audio refused) in one user turn, which also takes the
  user message right after them (tool results first, as Anthropic requires);
- ``max_completion_tokens`` / ``max_tokens`` → ``max_tokens`` (default 4096: Anthropic
  requires it); ``stop`` → ``stop_sequences``; ``temperature``, ``top_p``, ``top_k`` (an
  extension some OpenAI-style clients send, and a ``customSettings`` name), ``stream``;
  ``tools[].function`` → ``{name, description, input_schema}``; ``tool_choice``
  ``auto|none|required|{function}`` → ``auto|none|any|tool``; ``parallel_tool_calls:
  false`` → ``disable_parallel_tool_use``; ``user`` (else ``safety_identifier``) →
  ``metadata.user_id``;
- ``reasoning_effort`` → ``thinking`` budgets: low/medium/high 1024/8192/16384 (as
  Higress), xhigh/max 32768/65536; ``none``/``minimal`` → no thinking. The budget is
  shrunk below a client's ``max_tokens`` (without one, ``max_tokens`` is the budget +
  4096); a ``max_tokens`` of 1024 or less leaves no room for the smallest, and is
  refused. A ``thinking`` object (Anthropic's own, sent by an OpenAI-style client as an
  extra field) goes on as it stands and wins over ``reasoning_effort``.
- ``response_format``: ``json_schema`` → Anthropic's structured output
  (``output_config.format: {type: json_schema, schema}``), ``json_object`` → the same
  with the schema ``{"type": "object"}``, ``text`` → nothing.
- Dropped, changing nothing of the answer's content: ``seed`` (no determinism is
  promised either way), ``stream_options``, ``service_tier``, ``store``, ``metadata``,
  ``prediction`` (a latency hint), the prompt-cache hints (``prompt_cache_key``,
  ``prompt_cache_retention``, ``prompt_cache_options``), ``name`` on messages,
  ``strict`` on tools.
- Refused (``TranslationError``, the gateway's 400 ``unsupported_parameter``): ``n`` > 1,
  ``logprobs``/``top_logprobs``, a ``logit_bias``, non-zero penalties, ``verbosity``
  other than medium, audio output (``modalities``, ``audio``), ``web_search_options``,
  ``moderation``, the legacy ``functions``/``function_call`` (each only when it asks for
  something: ``logprobs: false`` or a zero penalty pass); any other field this module
  does not know; non-function tools, audio input, file ids, tool-call arguments that
  are not a JSON object.
"""

from __future__ import annotations

import re
from typing import Any

from tollway.protocols import pivot, thinking_blocks
from tollway.protocols.codec import Json, TranslationError

DEFAULT_MAX_TOKENS = 4096
# Chat fields Anthropic has nothing like, and the values that ask for nothing.
_NO_EQUIVALENT: dict[str, tuple[object, ...]] = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "frequency_penalty": (None, 0),
    "presence_penalty": (None, 0),
    "verbosity": (None, "medium"),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "web_search_options": (None,),
    "moderation": (None,),
    "functions": (None, []),
    "function_call": (None,),
}
# Chat fields that change nothing of the answer's content: not sent.
_DROPPED = frozenset(
    {
        "seed", "stream_options", "service_tier", "store", "metadata", "prediction",
        "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
    }
)  # fmt: skip
# Chat fields this module maps (``from_pivot``). A field in none of these three is
# refused: a field nobody mapped must not vanish on the way.
_MAPPED = frozenset(
    {
        "model", "messages", "n", "max_tokens", "max_completion_tokens", "stop", "temperature",
        "top_p", "top_k", "stream", "tools", "tool_choice", "parallel_tool_calls", "user",
        "safety_identifier", "response_format", "reasoning_effort", "thinking",
    }
)  # fmt: skip
THINKING_BUDGETS = {"low": 1024, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 65536}
# Efforts that ask for no reasoning: Anthropic's default, thinking off.
_NO_THINKING = frozenset({"none", "minimal"})
MIN_THINKING_BUDGET = 1024
_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def tool_id(raw: Any) -> str:
    """A tool-call id as Anthropic accepts it (``^[a-zA-Z0-9_-]+$``)."""
    text = raw if isinstance(raw, str) and raw else pivot.new_id("toolu_")
    return _TOOL_ID_BAD.sub("_", text)


class _Turns:
    """Anthropic messages being built; knows which user turn holds tool results."""

    def __init__(self) -> None:
        self.messages: list[Json] = []
        self._tool_turn = False  # the last message is a user turn of tool results

    def add(self, role: str, content: str | list[Json], tool_results: bool = False) -> None:
        last = self.messages[-1] if self.messages else None
        if last is not None and role == "user" and last["role"] == "user" and self._tool_turn:
            last["content"] = _blocks(last["content"]) + _blocks(content)
        else:
            self.messages.append({"role": role, "content": content})
        # More tool results may join this turn; a plain user message closes it.
        self._tool_turn = tool_results


def _blocks(content: str | list[Json]) -> list[Json]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return content


def _image_block(part: Json, where: str) -> Json:
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str):
        raise TranslationError(f"{where}.image_url.url must be a string")
    data = pivot.split_data_url(url)
    if data is not None:
        return {"type": "image", "source": {"type": "base64", "media_type": data[0], "data": data[1]}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise TranslationError(f"{where}.image_url.url must be a data: or http(s) URL")


def _file_block(part: Json, where: str) -> Json:
    spec = part.get("file")
    file_data = spec.get("file_data") if isinstance(spec, dict) else None
    data = pivot.split_data_url(file_data) if isinstance(file_data, str) else None
    if data is None or data[0] != "application/pdf":
        raise TranslationError(f"{where}: only PDF files sent inline as file_data can go to Anthropic")
    block: Json = {"type": "document", "source": {"type": "base64", "media_type": data[0], "data": data[1]}}
    if isinstance(spec, dict) and isinstance(spec.get("filename"), str):
        block["title"] = spec["filename"]
    return block


def _user_blocks(content: Any, where: str) -> str | list[Json]:
    if isinstance(content, str):
        return content
    blocks: list[Json] = []
    for j, part in enumerate(pivot.parts_of(content, where)):
        kind = part.get("type")
        pw = f"{where}.content[{j}]"
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part, pw))
        elif kind == "file":
            blocks.append(_file_block(part, pw))
        else:
            raise TranslationError(f"{pw}: content of type {kind!r} cannot be sent to Anthropic")
    return blocks


def _assistant_blocks(message: Json, where: str) -> str | list[Json]:
    content = message.get("content")
    calls = message.get("tool_calls") or []
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                kind = part.get("type") if isinstance(part, dict) else None
                raise TranslationError(
                    f"{where}.content[{j}]: an assistant message can hold only text and refusal parts, not {kind!r}"
                )
    blocks = thinking_blocks.of_message(message, where)
    if isinstance(content, str) and not calls and not blocks:
        return content
    text = pivot.answer_text(message)
    if text:
        blocks.append({"type": "text", "text": text})
    if not isinstance(calls, list):
        raise TranslationError(f"{where}.tool_calls must be a list")
    for k, call in enumerate(calls):
        cw = f"{where}.tool_calls[{k}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise TranslationError(f"{cw}.function.name is required")
        args = pivot.tool_arguments(fn.get("arguments"), cw)
        blocks.append({"type": "tool_use", "id": tool_id(call.get("id")), "name": fn["name"], "input": args})
    return blocks


def _tool_result(message: Json, where: str) -> Json:
    # A tool_result holds text, images and documents as a user turn does: its parts are
    # mapped the same way, and one with no Anthropic block (audio) is refused.
    block: Json = {"type": "tool_result", "tool_use_id": tool_id(message.get("tool_call_id"))}
    block["content"] = _user_blocks(message.get("content"), where)
    return block


def _system_text(message: Json, where: str) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content] if content else []
    texts = []
    for j, part in enumerate(pivot.parts_of(content, where)):
        if part.get("type") != "text":
            raise TranslationError(f"{where}.content[{j}]: a system message can hold only text")
        if part.get("text"):
            texts.append(part["text"])
    return texts


def _tools(tools: Any) -> list[Json]:
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out: list[Json] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type", "function") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise TranslationError(f"tools[{i}]: only function tools with a name can be sent to Anthropic")
        t: Json = {"name": fn["name"]}
        if isinstance(fn.get("description"), str):
            t["description"] = fn["description"]
        params = fn.get("parameters")
        t["input_schema"] = params if isinstance(params, dict) else {"type": "object", "properties": {}}
        out.append(t)
    return out


def _tool_choice(choice: Any, parallel: Any) -> Json | None:
    out: Json | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise TranslationError("tool_choice must be auto, none, required or a function")
    if parallel is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _output_format(response_format: Any) -> Json | None:
    """OpenAI's ``response_format`` as Anthropic's ``output_config.format`` (None: plain
    text)."""
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return {"type": "json_schema", "schema": {"type": "object"}}
    spec = response_format.get("json_schema")
    if kind == "json_schema" and isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        return {"type": "json_schema", "schema": spec["schema"]}
    raise TranslationError(f"response_format of type {kind!r} cannot be sent to Anthropic")


def from_pivot(chat: Json) -> Json:
    """An OpenAI chat-completions request → an Anthropic Messages request."""
    messages = chat.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise TranslationError("messages must be a list of message objects")
    if chat.get("n") not in (None, 1):
        raise TranslationError("n > 1 cannot be sent to Anthropic")
    pivot.refuse_unmapped(chat, "Anthropic", _MAPPED, _DROPPED, _NO_EQUIVALENT)
    system: list[str] = []
    system_messages = 0
    system_as_string = True
    turns = _Turns()
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role")
        if role in ("system", "developer"):
            system_messages += 1
            system_as_string = system_as_string and isinstance(m.get("content"), str)
            system.extend(_system_text(m, where))
        elif role == "user":
            turns.add("user", _user_blocks(m.get("content"), where))
        elif role == "assistant":
            blocks = _assistant_blocks(m, where)
            if blocks:
                turns.add("assistant", blocks)
        elif role == "tool":
            turns.add("user", [_tool_result(m, where)], tool_results=True)
        else:
            raise TranslationError(f"{where}.role {role!r} cannot be sent to Anthropic")

    max_tokens = chat.get("max_completion_tokens") or chat.get("max_tokens")
    limited = isinstance(max_tokens, int) and max_tokens > 0
    body: Json = {
        "model": chat.get("model"),
        "max_tokens": max_tokens if limited else DEFAULT_MAX_TOKENS,
        "messages": turns.messages,
    }
    if system:
        body["system"] = (
            system[0]
            if system_messages == 1 and system_as_string and len(system) == 1
            else [{"type": "text", "text": t} for t in system]
        )
    stop = chat.get("stop")
    if isinstance(stop, str):
        body["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        body["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    for key in ("temperature", "top_p", "top_k"):
        if chat.get(key) is not None:
            body[key] = chat[key]
    if chat.get("stream") is True:
        body["stream"] = True
    if chat.get("tools"):
        body["tools"] = _tools(chat["tools"])
        choice = _tool_choice(chat.get("tool_choice"), chat.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    user_id = chat.get("user") if isinstance(chat.get("user"), str) else chat.get("safety_identifier")
    if isinstance(user_id, str):
        body["metadata"] = {"user_id": user_id}
    output_format = _output_format(chat.get("response_format"))
    if output_format is not None:
        body["output_config"] = {"format": output_format}
    _think(chat, body, limited)
    return body


def _think(chat: Json, body: Json, limited: bool) -> None:
    """``thinking`` as the client gave it, or a budget for its ``reasoning_effort``."""
    thinking = chat.get("thinking")
    if thinking is not None:
        if not isinstance(thinking, dict):
            raise TranslationError("thinking must be an object")
        body["thinking"] = thinking
        return
    effort = chat.get("reasoning_effort")
    if effort is None or effort in _NO_THINKING:
        return
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise TranslationError(f"reasoning_effort {effort!r} has no Anthropic thinking budget")
    # The budget counts inside max_tokens, as OpenAI's reasoning tokens count inside
    # max_completion_tokens: a client's limit is kept and the budget shrunk to fit;
    # without one, the default leaves the answer 4096 tokens beside the budget.
    if not limited:
        body["max_tokens"] = DEFAULT_MAX_TOKENS + budget
    budget = min(budget, body["max_tokens"] - 1)
    if budget < MIN_THINKING_BUDGET:
        # Claude's smallest budget does not fit: thinking cannot be asked for, and the
        # client's effort must not be dropped without a word.
        raise TranslationError(
            f"reasoning_effort {effort!r} needs an output limit above {MIN_THINKING_BUDGET} tokens "
            "(max_tokens, max_completion_tokens or max_output_tokens) on an Anthropic provider: its "
            f"smallest thinking budget is {MIN_THINKING_BUDGET} tokens, counted inside the limit"
        )
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
