"""A Responses API request → the chat pivot, field by field; what cannot cross is refused.

Every top-level field is in one of the tables below or refused: a field nobody mapped
must not vanish on the way (SPEC §9). ``None`` counts as absent (SDKs send nulls).

- Carried into the pivot: ``input`` and ``instructions`` → ``messages``;
  ``max_output_tokens`` → ``max_completion_tokens``; ``temperature``, ``top_p``,
  ``stream``; function ``tools`` (``strict`` kept) and ``tool_choice``;
  ``parallel_tool_calls``; ``reasoning.effort`` → ``reasoning_effort``; ``text.format``
  ``json_schema`` / ``json_object`` → ``response_format``; ``text.verbosity`` →
  ``verbosity``; ``user``, ``safety_identifier``, ``service_tier``, the prompt-cache
  hints. The provider's codec then maps or refuses each as it does for chat.
- Kept by the gateway, not sent: ``metadata`` (echoed on the response, as OpenAI
  does), ``client_metadata`` (a client's telemetry, as Codex sends it), ``store``
  (accepted whatever its value: nothing is stored, and the response says ``store:
  false``), ``stream_options`` (the translated stream carries no obfuscation padding),
  ``max_tool_calls`` (it bounds built-in tools, which are refused), ``truncation:
  disabled`` (what every provider does), ``include: [reasoning.encrypted_content]``
  (the only reasoning items a translated answer has, Claude's signed thinking, always
  carry it), ``reasoning.summary`` (no reasoning item carries a summary).
- A ``reasoning`` input item the gateway made (its ``encrypted_content`` holds Claude's
  thinking blocks, see ``tollway.protocols.thinking_blocks``) → the ``thinking_blocks``
  of the assistant turn it starts; its ``id``, ``summary`` and ``status`` name or
  describe the item and are not sent.
- Function tools grouped in a ``namespace`` tool cross one by one.
- Refused: server-side state (``previous_response_id``, ``conversation``,
  ``background``, a stored ``prompt``), ``truncation: auto``, other ``include`` values,
  ``top_logprobs`` (the answer's log probabilities are not
  carried back), built-in tools and ``tool_choice`` naming one; input items other than
  messages, ``function_call``, ``function_call_output`` and the gateway's own reasoning
  items (another provider's encrypted reasoning means nothing to this one); content
  parts other than
  text, images by URL and files sent inline.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.protocols import thinking_blocks
from tollway.protocols.codec import Json, TranslationError
from tollway.protocols.openai.wire import take_sampling

# Fields that ask the provider to keep, or to fetch, state a translated call cannot have.
STATEFUL = ("previous_response_id", "conversation", "background", "prompt")
# Fields copied into the pivot under the same name.
_SAME_NAME = (
    "temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "service_tier",
    "prompt_cache_key", "prompt_cache_retention",
)  # fmt: skip
# Fields read by ``to_pivot`` below, or kept by the gateway (see the module).
_KNOWN = frozenset(
    {
        "model", "input", "instructions", "max_output_tokens", "tools", "tool_choice", "reasoning",
        "text", "stream", "stream_options", "metadata", "store", "max_tool_calls", "truncation",
        "include", "top_logprobs", "client_metadata", *_SAME_NAME,
    }
)  # fmt: skip
# What ``include`` may ask for: encrypted reasoning goes into reasoning items, and a
# translated answer's (Claude's thinking) always carry it.
_INCLUDABLE = frozenset({"reasoning.encrypted_content"})
_ROLES = frozenset({"user", "assistant", "system", "developer"})


def _refuse(field: str, why: str = "the gateway does not translate it") -> TranslationError:
    return TranslationError(f"{field} cannot be translated for this provider ({why})")


def _parts(content: Any, where: str) -> str | list[Json]:
    """A message item's content as chat content: a string, or chat content parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise TranslationError(f"{where}.content must be a string or a list of content parts")
    parts: list[Json] = []
    for j, part in enumerate(content):
        pw = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": str(part.get("text") or "")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image: Json = {"url": part["image_url"]}
            if isinstance(part.get("detail"), str):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and isinstance(part.get("file_data"), str):
            file: Json = {"file_data": part["file_data"]}
            if isinstance(part.get("filename"), str):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        elif kind in ("input_image", "input_file"):
            raise _refuse(pw, "only images by URL and files sent inline as file_data cross; file ids are not kept")
        else:
            raise _refuse(f"{pw} of type {kind!r}")
    if all(p["type"] == "text" for p in parts):
        return "".join(str(p["text"]) for p in parts)
    return parts


def _tool_output(output: Any, where: str) -> str:
    """A ``function_call_output``'s output as a tool message's text."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = [p.get("text") for p in output if isinstance(p, dict) and p.get("type") == "input_text"]
        if len(texts) == len(output) and all(isinstance(t, str) for t in texts):
            return "".join(str(t) for t in texts)
        raise _refuse(f"{where}.output", "only text outputs cross")
    return orjson.dumps(output).decode()


def _call(item: Json, where: str) -> Json:
    if not isinstance(item.get("name"), str) or not isinstance(item.get("call_id"), str):
        raise TranslationError(f"{where}: a function_call needs its call_id and name")
    arguments = item.get("arguments")
    return {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": arguments if isinstance(arguments, str) else "{}"},
    }


def _thinking_only(message: Json) -> bool:
    """An assistant turn that so far holds only the thinking of reasoning items."""
    return (
        message["role"] == "assistant"
        and thinking_blocks.FIELD in message
        and message.get("content") is None
        and not message.get("tool_calls")
    )


def _reasoning_blocks(item: Json, where: str) -> list[Json]:
    sealed = item.get("encrypted_content")
    if not thinking_blocks.is_sealed(sealed):
        raise _refuse(f"{where} of type 'reasoning'", "only the reasoning items the gateway gave cross")
    return thinking_blocks.unseal(sealed, where)


def messages(body: Json) -> list[Json]:
    """``instructions`` and ``input`` as chat messages. An item's ``id`` and ``status``
    name the item and are not sent; a ``function_call`` joins the assistant turn before
    it (a model's text and its calls come back as separate items, one chat turn), and
    so does an assistant message that follows reasoning items (the turn they start)."""
    out: list[Json] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        out.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise TranslationError("instructions must be a string")
    given = body.get("input")
    if isinstance(given, str):
        out.append({"role": "user", "content": given})
        return out
    if not isinstance(given, list):
        raise TranslationError("input must be a string or a list of items")
    for i, item in enumerate(given):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise TranslationError(f"{where} must be an object")
        kind = item.get("type", "message")
        last = out[-1] if out else None
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _refuse(f"{where}.role {role!r}")
            if role == "assistant" and last is not None and _thinking_only(last):
                last["content"] = _parts(item.get("content"), where)
            else:
                out.append({"role": role, "content": _parts(item.get("content"), where)})
        elif kind == "reasoning":
            blocks = _reasoning_blocks(item, where)
            if last is not None and _thinking_only(last):
                last[thinking_blocks.FIELD] += blocks
            else:
                out.append({"role": "assistant", "content": None, thinking_blocks.FIELD: blocks})
        elif kind == "function_call":
            call = _call(item, where)
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str):
                raise TranslationError(f"{where}: a function_call_output needs the call_id it answers")
            output = _tool_output(item.get("output"), where)
            out.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        elif kind == "item_reference":
            raise _refuse(where, "it names an item stored by the provider, and a translated call keeps none")
        else:
            raise _refuse(f"{where} of type {kind!r}")
    return out


def _function_tool(tool: Any, where: str) -> Json:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function" or not isinstance(tool.get("name"), str):
        raise _refuse(f"{where} of type {kind!r}", "only function tools with a name cross")
    for key, value in tool.items():
        if value is not None and key not in ("type", "name", "description", "parameters", "strict"):
            raise _refuse(f"{where}.{key}")
    fn: Json = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _tools(tools: Any) -> list[Json]:
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    out: list[Json] = []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") == "namespace" and isinstance(tool.get("tools"), list):
            # A group of function tools (Codex offers its sub-agent tools so): each
            # crosses as a function of its own name, which is how its calls come back.
            out.extend(_function_tool(inner, f"tools[{i}].tools[{j}]") for j, inner in enumerate(tool["tools"]))
        else:
            out.append(_function_tool(tool, f"tools[{i}]"))
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise _refuse(f"tool_choice {choice!r}", "only auto, none, required or a function cross")


def _reasoning(reasoning: Any, chat: Json) -> None:
    if not isinstance(reasoning, dict):
        raise TranslationError("reasoning must be an object")
    for key, value in reasoning.items():
        if value is None:
            continue
        if key == "effort" and isinstance(value, str):
            chat["reasoning_effort"] = value
        elif key in ("summary", "generate_summary"):
            # Summaries are given when there is reasoning to summarise (OpenAI's models
            # give none for many calls); a translated provider's reasoning is not
            # carried back as Responses reasoning items, so none comes.
            continue
        else:
            raise _refuse(f"reasoning.{key}")


def _text(text: Any, chat: Json) -> None:
    if not isinstance(text, dict):
        raise TranslationError("text must be an object")
    for key, value in text.items():
        if value is None:
            continue
        if key == "verbosity":
            chat["verbosity"] = value
        elif key != "format":
            raise _refuse(f"text.{key}")
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind == "json_schema" and isinstance(fmt.get("schema"), dict):
        spec: Json = {"name": fmt.get("name") or "output", "schema": fmt["schema"]}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                spec[key] = fmt[key]
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    else:
        raise _refuse(f"text.format of type {kind!r}")


def _kept(body: Json) -> None:
    """The fields the gateway keeps without sending: refused where they ask for more."""
    truncation = body.get("truncation")
    if truncation not in (None, "disabled"):
        raise _refuse(f"truncation {truncation!r}", "the whole input goes to the provider, or the call fails")
    include = body.get("include")
    if include is not None:
        if not isinstance(include, list):
            raise TranslationError("include must be a list")
        for i, what in enumerate(include):
            if what not in _INCLUDABLE:
                raise _refuse(f"include[{i}] {what!r}")
    if body.get("top_logprobs") not in (None, 0):
        raise _refuse("top_logprobs", "log probabilities are not carried back")


def to_pivot(body: Json) -> Json:
    """A ``POST /v1/responses`` body → an OpenAI chat-completions request (see the
    module); ``TranslationError`` names what cannot cross."""
    for field in STATEFUL:
        if body.get(field):
            raise _refuse(field, "it needs state the provider cannot keep")
    for field, value in body.items():
        if value is not None and field not in _KNOWN and field not in STATEFUL:
            raise _refuse(field)
    _kept(body)
    chat: Json = {"model": body.get("model"), "messages": messages(body)}
    limit = body.get("max_output_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool):
        chat["max_completion_tokens"] = limit
    take_sampling(body, chat, _SAME_NAME)
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("reasoning") is not None:
        _reasoning(body["reasoning"], chat)
    if body.get("text") is not None:
        _text(body["text"], chat)
    return chat
