"""Gemini ``generateContent`` requests ↔ OpenAI chat-completions requests (the pivot).

From the pivot:

- ``system``/``developer`` messages → ``systemInstruction.parts``; ``user`` → a ``user``
  content; ``assistant`` → a ``model`` content; ``tool`` messages → ``functionResponse``
  parts (consecutive ones in one ``user`` content), named after the call they answer;
- content parts: text → ``text``; ``image_url`` / ``file`` with a ``data:`` URL →
  ``inlineData``; an http(s) image URL → ``fileData.fileUri`` (type guessed from the
  name); ``input_audio`` → ``inlineData`` ``audio/wav|mp3``;
- ``tool_calls`` → ``functionCall`` parts ``{id, name, args}`` (with the
  ``thoughtSignature`` a Gemini answer gave, carried in the pivot as Google's OpenAI
  layer does: ``tool_calls[].extra_content.google.thought_signature``); a tool result
  that is a JSON object is the ``response``, other text is ``{"output": text}``;
- ``generationConfig``: ``maxOutputTokens`` (``max_completion_tokens`` /
  ``max_tokens``), ``temperature``, ``topP``, ``topK`` (``top_k``, an extension some
  OpenAI-style clients send), ``stopSequences`` (``stop``), ``candidateCount`` (``n``),
  ``seed``, ``presencePenalty``, ``frequencyPenalty``, ``responseMimeType`` +
  ``responseJsonSchema`` (``response_format``), ``thinkingConfig``
  (``reasoning_effort``, as Google's own OpenAI compatibility layer maps it: Gemini 2.x
  models take a ``thinkingBudget`` of 0 for none, 1024 for minimal and low, 8192 for
  medium, 24576 for high and above; later models a ``thinkingLevel`` of the effort's
  name, none as minimal, above high as high);
- ``tools[].function`` → ``tools[{functionDeclarations: [{name, description,
  parametersJsonSchema}]}]``; ``tool_choice`` → ``toolConfig.functionCallingConfig``
  (``auto`` AUTO, ``none`` NONE, ``required`` ANY, a named function ANY restricted to it).
- The model and ``stream`` are not in the body (they are in the URL).
- Dropped, changing nothing of the answer's content: ``stream_options``, ``user``,
  ``safety_identifier``, ``store``, ``metadata``, ``service_tier``, ``prediction``, the
  prompt-cache hints, ``parallel_tool_calls: true``.
- Refused (``TranslationError``, the gateway's 400 ``unsupported_parameter``), each only
  when it asks for something: ``logprobs``/``top_logprobs``, ``logit_bias``,
  ``verbosity`` other than medium, audio output (``modalities``, ``audio``),
  ``web_search_options``, ``moderation``, ``parallel_tool_calls: false``, Anthropic's
  ``thinking``, the legacy ``functions``/``function_call``; any other field this module
  does not know.

To the pivot the same mapping runs backwards (without a ``model``: the caller has it
from the URL). Function calls without ids get ids, and the responses that follow are
matched to them by name.
"""

from __future__ import annotations

import mimetypes
from collections import defaultdict, deque
from typing import Any

import orjson

from tollway.protocols import pivot
from tollway.protocols.codec import Json, TranslationError
from tollway.protocols.lists import members

AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
# Chat fields Gemini has nothing like, and the values that ask for nothing.
_NO_EQUIVALENT: dict[str, tuple[object, ...]] = {
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "verbosity": (None, "medium"),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "web_search_options": (None,),
    "moderation": (None,),
    "parallel_tool_calls": (None, True),
    "thinking": (None,),
    "functions": (None, []),
    "function_call": (None,),
}
# Chat fields that change nothing of the answer's content: not sent.
_DROPPED = frozenset(
    {
        "stream_options", "user", "safety_identifier", "store", "metadata", "service_tier", "prediction",
        "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options",
    }
)  # fmt: skip
# Chat fields ``from_pivot`` maps. A field in none of these three is refused.
_MAPPED = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed",
        "presence_penalty", "frequency_penalty", "stop", "n", "response_format", "tools", "tool_choice",
        "stream", "reasoning_effort",
    }
)  # fmt: skip
# reasoning_effort as Gemini 2.x thinking budgets and later models' thinking levels.
_THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_THINKING_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_ABOVE_HIGH = frozenset({"xhigh", "max"})
CHOICE_TO_MODE = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
MODE_TO_CHOICE = {"AUTO": "auto", "NONE": "none", "ANY": "required", "VALIDATED": "auto"}


# ---- pivot → Gemini ------------------------------------------------------------------


def _media_part(url: str, where: str) -> Json:
    data = pivot.split_data_url(url)
    if data is not None:
        return {"inlineData": {"mimeType": data[0], "data": data[1]}}
    if url.startswith(("http://", "https://")):
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise TranslationError(f"{where}: only data: and http(s) URLs can be sent to Gemini")


def _content_parts(content: Any, where: str) -> list[Json]:
    parts: list[Json] = []
    for j, part in enumerate(pivot.parts_of(content, where)):
        kind = part.get("type")
        pw = f"{where}.content[{j}]"
        if kind in ("text", "refusal"):
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str):
                raise TranslationError(f"{pw}.image_url.url must be a string")
            parts.append(_media_part(url, pw))
        elif kind == "file":
            file_data = pivot.member(part, "file").get("file_data")
            if not isinstance(file_data, str) or not file_data.startswith("data:"):
                raise TranslationError(f"{pw}: only files sent inline as file_data can go to Gemini")
            parts.append(_media_part(file_data, pw))
        elif kind == "input_audio":
            audio = pivot.member(part, "input_audio")
            mime = AUDIO_TYPES.get(str(audio.get("format")))
            if mime is None or not isinstance(audio.get("data"), str):
                raise TranslationError(f"{pw}.input_audio must have data and a format of wav or mp3")
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        else:
            raise TranslationError(f"{pw}: content of type {kind!r} cannot be sent to Gemini")
    return parts


def function_call_part(call: Any, fc: Json) -> Json:
    """The Gemini part for a chat tool call whose ``functionCall`` is ``fc``; the
    thought signature Gemini gave the call (kept in ``extra_content.google``) goes back
    with it, as Gemini requires for thinking models."""
    part: Json = {"functionCall": fc}
    signature = pivot.member(pivot.member(call, "extra_content"), "google").get("thought_signature")
    if isinstance(signature, str):
        part["thoughtSignature"] = signature
    return part


def _call_parts(message: Json, where: str, names: dict[str, str]) -> list[Json]:
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise TranslationError(f"{where}.tool_calls must be a list")
    parts: list[Json] = []
    for k, call in enumerate(calls):
        cw = f"{where}.tool_calls[{k}]"
        fn = pivot.member(call, "function")
        if not isinstance(fn.get("name"), str):
            raise TranslationError(f"{cw}.function.name is required")
        fc: Json = {"name": fn["name"], "args": pivot.tool_arguments(fn.get("arguments"), cw)}
        if isinstance(call.get("id"), str) and call["id"]:
            fc["id"] = call["id"]
            names[call["id"]] = fn["name"]
        parts.append(function_call_part(call, fc))
    return parts


def _response_part(message: Json, where: str, names: dict[str, str]) -> Json:
    call_id = message.get("tool_call_id")
    name = names.get(call_id) if isinstance(call_id, str) else None
    name = name or message.get("name")
    if not isinstance(name, str):
        raise TranslationError(f"{where}.tool_call_id does not name an earlier tool call")
    text = pivot.text_of(message.get("content"))
    try:
        parsed = orjson.loads(text) if text.lstrip().startswith("{") else None
    except orjson.JSONDecodeError:
        parsed = None
    fr: Json = {"name": name, "response": parsed if isinstance(parsed, dict) else {"output": text}}
    if isinstance(call_id, str) and call_id:
        fr["id"] = call_id
    return {"functionResponse": fr}


def generation_config(chat: Json) -> Json:
    config: Json = {}
    max_tokens = chat.get("max_completion_tokens") or chat.get("max_tokens")
    if isinstance(max_tokens, int):
        config["maxOutputTokens"] = max_tokens
    for src, dst in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if chat.get(src) is not None:
            config[dst] = chat[src]
    stop = chat.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = list(stop)
    if isinstance(chat.get("n"), int) and chat["n"] > 1:
        config["candidateCount"] = chat["n"]
    fmt = pivot.member(chat, "response_format")
    if fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = pivot.member(fmt, "json_schema").get("schema")
        if isinstance(schema, dict):
            config["responseJsonSchema"] = schema
    thinking = _thinking(chat.get("reasoning_effort"), str(chat.get("model") or ""))
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _thinking(effort: Any, model: str) -> Json | None:
    """``reasoning_effort`` as a ``thinkingConfig`` for ``model`` (see the module)."""
    if effort is None:
        return None
    if not isinstance(effort, str) or (effort not in _THINKING_LEVELS and effort not in _ABOVE_HIGH):
        raise TranslationError(f"reasoning_effort {effort!r} has no Gemini thinking setting")
    effort = "high" if effort in _ABOVE_HIGH else effort
    if "gemini-2" in model:
        return {"thinkingBudget": _THINKING_BUDGETS[effort]}
    return {"thinkingLevel": _THINKING_LEVELS[effort]}


def _tools(tools: Any) -> list[Json]:
    if not isinstance(tools, list):
        raise TranslationError("tools must be a list")
    declarations = []
    for i, tool in enumerate(tools):
        fn = pivot.member(tool, "function") if isinstance(tool, dict) and tool.get("type") == "function" else {}
        if not isinstance(fn.get("name"), str):
            raise TranslationError(f"tools[{i}]: only function tools with a name can be sent to Gemini")
        decl: Json = {"name": fn["name"]}
        if isinstance(fn.get("description"), str):
            decl["description"] = fn["description"]
        if isinstance(fn.get("parameters"), dict):
            decl["parametersJsonSchema"] = fn["parameters"]
        declarations.append(decl)
    return [{"functionDeclarations": declarations}]


def _tool_config(choice: Any) -> Json | None:
    if choice is None:
        return None
    if isinstance(choice, str) and choice in CHOICE_TO_MODE:
        return {"functionCallingConfig": {"mode": CHOICE_TO_MODE[choice]}}
    name = pivot.member(choice, "function").get("name")
    if isinstance(name, str):
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise TranslationError("tool_choice must be auto, none, required or a function")


def from_pivot(chat: Json) -> Json:
    """An OpenAI chat-completions request → a Gemini ``generateContent`` body."""
    messages = chat.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise TranslationError("messages must be a list of message objects")
    pivot.refuse_unmapped(chat, "Gemini", _MAPPED, _DROPPED, _NO_EQUIVALENT)
    system: list[Json] = []
    contents: list[Json] = []
    names: dict[str, str] = {}  # tool call id → function name
    last_was_tool = False
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(_content_parts(m.get("content"), where))
            continue
        if role == "tool":
            part = _response_part(m, where, names)
            if last_was_tool:
                contents[-1]["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
            last_was_tool = True
            continue
        last_was_tool = False
        if role == "user":
            contents.append({"role": "user", "parts": _content_parts(m.get("content"), where)})
        elif role == "assistant":
            parts = _content_parts(m.get("content"), where) + _call_parts(m, where, names)
            if parts:
                contents.append({"role": "model", "parts": parts})
        else:
            raise TranslationError(f"{where}.role {role!r} cannot be sent to Gemini")
    body: Json = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = generation_config(chat)
    if config:
        body["generationConfig"] = config
    if chat.get("tools"):
        body["tools"] = _tools(chat["tools"])
        tool_config = _tool_config(chat.get("tool_choice"))
        if tool_config is not None:
            body["toolConfig"] = tool_config
    return body


# ---- Gemini → pivot ------------------------------------------------------------------


class _CallIds:
    """Ids for function calls that came without one, and the responses that answer them."""

    def __init__(self) -> None:
        self._pending: defaultdict[str, deque[str]] = defaultdict(deque)

    def call(self, fc: Json) -> str:
        given = fc.get("id")
        call_id = given if isinstance(given, str) and given else pivot.new_id("call_")
        self._pending[str(fc.get("name"))].append(call_id)
        return call_id

    def response(self, fr: Json) -> str:
        given = fr.get("id")
        pending = self._pending[str(fr.get("name"))]
        if isinstance(given, str) and given:
            if given in pending:
                pending.remove(given)
            return given
        return pending.popleft() if pending else pivot.new_id("call_")


def call_to_pivot(part: Json, call_id: str) -> Json:
    """A ``functionCall`` part → an OpenAI tool call (its thought signature kept)."""
    fc = pivot.member(part, "functionCall")
    call: Json = {
        "id": call_id,
        "type": "function",
        "function": {"name": fc.get("name"), "arguments": pivot.dumps(fc.get("args") or {})},
    }
    if isinstance(part.get("thoughtSignature"), str):
        call["extra_content"] = {"google": {"thought_signature": part["thoughtSignature"]}}
    return call


def _media_to_pivot(part: Json, where: str) -> Json:
    if "inlineData" in part:
        inline = pivot.member(part, "inlineData")
        mime, data = str(inline.get("mimeType")), str(inline.get("data"))
        if mime.startswith("image/"):
            return {"type": "image_url", "image_url": {"url": pivot.data_url(mime, data)}}
        fmt = next((f for f, t in AUDIO_TYPES.items() if t == mime), None)
        if fmt is not None:
            return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
        return {"type": "file", "file": {"file_data": pivot.data_url(mime, data)}}
    file = pivot.member(part, "fileData")
    if str(file.get("mimeType", "")).startswith("image/") and isinstance(file.get("fileUri"), str):
        return {"type": "image_url", "image_url": {"url": file["fileUri"]}}
    raise TranslationError(f"{where}: this part cannot be translated")


def _user_to_pivot(parts: list[Any], where: str, ids: _CallIds) -> list[Json]:
    tools: list[Json] = []
    content: list[Json] = []
    for j, part in enumerate(parts):
        pw = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            raise TranslationError(f"{pw} must be an object")
        if "text" in part:
            content.append({"type": "text", "text": part["text"]})
        elif "functionResponse" in part:
            fr = pivot.member(part, "functionResponse")
            response = pivot.member(fr, "response")
            output = response.get("output")
            text = output if set(response) == {"output"} and isinstance(output, str) else pivot.dumps(response)
            tools.append({"role": "tool", "tool_call_id": ids.response(fr), "content": text})
        else:
            content.append(_media_to_pivot(part, pw))
    if content:
        if all(p["type"] == "text" for p in content) and len(content) == 1:
            return [*tools, {"role": "user", "content": content[0]["text"]}]
        return [*tools, {"role": "user", "content": content}]
    return tools


def _model_to_pivot(parts: list[Any], ids: _CallIds) -> Json:
    texts = [p["text"] for p in parts if isinstance(p, dict) and "text" in p and not p.get("thought")]
    calls = [
        call_to_pivot(p, ids.call(pivot.member(p, "functionCall")))
        for p in parts
        if isinstance(p, dict) and "functionCall" in p
    ]
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _text_parts(obj: Any) -> list[Json]:
    parts = obj.get("parts") if isinstance(obj, dict) else None
    return [{"type": "text", "text": p["text"]} for p in parts or () if isinstance(p, dict) and "text" in p]


def _config_to_pivot(config: Json, chat: Json) -> None:
    for src, dst in (
        ("maxOutputTokens", "max_completion_tokens"),  # (OpenAI's reasoning models refuse max_tokens)
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
        ("stopSequences", "stop"),
        ("candidateCount", "n"),
    ):
        if config.get(src) is not None:
            chat[dst] = config[src]
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        chat["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
            if isinstance(schema, dict)
            else {"type": "json_object"}
        )


def _tools_to_pivot(tools: Any) -> list[Json]:
    out = []
    for tool in tools if isinstance(tools, list) else ():
        for decl in members(tool, "functionDeclarations") if isinstance(tool, dict) else ():
            fn: Json = {"name": decl.get("name")}
            if isinstance(decl.get("description"), str):
                fn["description"] = decl["description"]
            params = decl.get("parametersJsonSchema") or decl.get("parameters")
            if isinstance(params, dict):
                fn["parameters"] = params
            out.append({"type": "function", "function": fn})
    return out


def to_pivot(body: Json) -> Json:
    """A Gemini ``generateContent`` body → an OpenAI chat-completions request (no model)."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not all(isinstance(c, dict) for c in contents):
        raise TranslationError("contents must be a list of content objects")
    messages: list[Json] = []
    system = _text_parts(body.get("systemInstruction"))
    if system:
        messages.append({"role": "system", "content": system[0]["text"] if len(system) == 1 else system})
    ids = _CallIds()
    for i, c in enumerate(contents):
        parts = c.get("parts") if isinstance(c.get("parts"), list) else []
        if c.get("role") == "model":
            messages.append(_model_to_pivot(parts, ids))
        else:
            messages.extend(_user_to_pivot(parts, f"contents[{i}]", ids))
    chat: Json = {"messages": messages}
    _config_to_pivot(pivot.member(body, "generationConfig"), chat)
    tools = _tools_to_pivot(body.get("tools"))
    if tools:
        chat["tools"] = tools
        mode_config = pivot.member(pivot.member(body, "toolConfig"), "functionCallingConfig")
        allowed = mode_config.get("allowedFunctionNames")
        if mode_config.get("mode") == "ANY" and isinstance(allowed, list) and len(allowed) == 1:
            chat["tool_choice"] = {"type": "function", "function": {"name": allowed[0]}}
        elif mode_config.get("mode") in MODE_TO_CHOICE:
            chat["tool_choice"] = MODE_TO_CHOICE[mode_config["mode"]]
    return chat
