"""Where the text a model reads sits in each API's request body, and where its answer
sits in the response; plus the small JSONPath dialect of ``deny_jsonpath``.

Every function here returns a new value with the texts passed through a function and
shares every part that did not change; the value it was given is never edited (it may be
the client's own parsed request).

Request texts: OpenAI chat ``messages[].content`` (a string, or the ``text`` of text
parts) and the ``arguments`` of earlier tool calls; completions ``prompt`` (string or
list of strings); embeddings ``input`` (likewise); Anthropic ``system`` and
``messages[].content`` (text blocks, ``tool_use`` input, ``tool_result`` content). Never
the model name or any parameter. Anthropic ``thinking`` blocks are left alone: they are
signed, and a changed one is refused.

Answers: every string is restored (``map_answer``) except in Anthropic ``thinking`` and
``redacted_thinking`` blocks, which keep their placeholders, so that the client can send
them back unchanged and the originals still never reach the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tollway.protocols.apis import Api

TextFn = Callable[[str], str]


def _with(obj: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``obj`` with ``key`` set to ``value``: ``obj`` itself when nothing changes."""
    if key not in obj or obj[key] is value:
        return obj
    return {**obj, key: value}


def _each(items: Any, fn: Callable[[Any], Any]) -> Any:
    if not isinstance(items, list):
        return items
    out = [fn(item) for item in items]
    return items if all(a is b for a, b in zip(out, items, strict=True)) else out


def _text(value: Any, fn: TextFn) -> Any:
    return fn(value) if isinstance(value, str) else value


def all_strings(value: Any, fn: TextFn) -> Any:
    """Every string value inside ``value`` (keys untouched)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return _each(value, lambda v: all_strings(v, fn))
    if isinstance(value, dict):
        out = value
        for k, v in value.items():
            out = _with(out, k, all_strings(v, fn))
        return out
    return value


_SIGNED = frozenset({"thinking", "redacted_thinking"})


def map_answer(value: Any, fn: TextFn) -> Any:
    """Every string of a response body, but those of signed thinking blocks."""
    if isinstance(value, dict):
        if value.get("type") in _SIGNED:
            return value
        out = value
        for k, v in value.items():
            out = _with(out, k, map_answer(v, fn))
        return out
    if isinstance(value, list):
        return _each(value, lambda v: map_answer(v, fn))
    return fn(value) if isinstance(value, str) else value


# --- requests ---------------------------------------------------------------------------


def map_request(api: Api, body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``body`` with every prompt text of ``api`` passed through ``fn``."""
    if api == "chat":
        return _with(body, "messages", _each(body.get("messages"), lambda m: _chat_message(m, fn)))
    if api in ("completions", "embeddings"):
        key = "prompt" if api == "completions" else "input"
        value = body.get(key)
        new = fn(value) if isinstance(value, str) else _each(value, lambda v: _text(v, fn))
        return _with(body, key, new)
    if api == "messages":
        body = _with(body, "system", _anthropic_content(body.get("system"), fn))
        return _with(body, "messages", _each(body.get("messages"), lambda m: _anthropic_message(m, fn)))
    return body


def _chat_message(message: Any, fn: TextFn) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        message = _with(message, "content", fn(content))
    else:
        message = _with(message, "content", _each(content, lambda p: _text_part(p, fn)))
    message = _with(message, "tool_calls", _each(message.get("tool_calls"), lambda c: _call_arguments(c, fn)))
    return _with(message, "function_call", _arguments(message.get("function_call"), fn))


def _text_part(part: Any, fn: TextFn) -> Any:
    if isinstance(part, dict) and part.get("type") == "text":
        return _with(part, "text", _text(part.get("text"), fn))
    return part


def _call_arguments(call: Any, fn: TextFn) -> Any:
    if isinstance(call, dict):
        return _with(call, "function", _arguments(call.get("function"), fn))
    return call


def _arguments(function: Any, fn: TextFn) -> Any:
    if isinstance(function, dict):
        return _with(function, "arguments", _text(function.get("arguments"), fn))
    return function


def _anthropic_message(message: Any, fn: TextFn) -> Any:
    if isinstance(message, dict):
        return _with(message, "content", _anthropic_content(message.get("content"), fn))
    return message


def _anthropic_content(content: Any, fn: TextFn) -> Any:
    if isinstance(content, str):
        return fn(content)
    return _each(content, lambda b: _anthropic_block(b, fn))


def _anthropic_block(block: Any, fn: TextFn) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "text":
        return _with(block, "text", _text(block.get("text"), fn))
    if kind == "tool_use":
        return _with(block, "input", all_strings(block.get("input"), fn))
    if kind == "tool_result":
        return _with(block, "content", _anthropic_content(block.get("content"), fn))
    return block


def map_all_but_model(body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``deny_raw``: every string value in the body except the model name."""
    out = body
    for k, v in body.items():
        if k != "model":
            out = _with(out, k, all_strings(v, fn))
    return out


# --- deny_jsonpath ----------------------------------------------------------------------

Step = str | int | None  # a key, an index, or None for "every element"
_STEP = re.compile(r"\.(\*|[A-Za-z_$][\w$-]*)|\[(\*|-?\d+|'[^']*'|\"[^\"]*\")\]")


class JsonPathError(ValueError):
    pass


def parse_jsonpath(path: str) -> tuple[Step, ...]:
    """``$.messages[*].content``, ``$['a'].b[0]``, ``$.*``: keys, indexes and wildcards
    (no filters, slices or recursive descent)."""
    if not path.startswith("$"):
        raise JsonPathError(f"{path!r}: a JSONPath starts with $")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise JsonPathError(
                f"{path!r}: unsupported syntax at {path[pos:]!r} (supported: .key, ['key'], [0], [*], .*)"
            )
        token = m.group(1) or m.group(2)
        if token == "*":
            steps.append(None)
        elif token[0] in "'\"":
            steps.append(token[1:-1])
        elif m.group(2) is not None:
            steps.append(int(token))
        else:
            steps.append(token)
        pos = m.end()
    return tuple(steps)


def map_path(value: Any, steps: tuple[Step, ...], fn: TextFn) -> Any:
    """The strings ``steps`` select in ``value`` passed through ``fn``."""
    if not steps:
        return _text(value, fn)
    step, rest = steps[0], steps[1:]
    if step is None:
        if isinstance(value, dict):
            out = value
            for k, v in value.items():
                out = _with(out, k, map_path(v, rest, fn))
            return out
        return _each(value, lambda v: map_path(v, rest, fn))
    if isinstance(step, int):
        if isinstance(value, list) and -len(value) <= step < len(value):
            new = map_path(value[step], rest, fn)
            if new is not value[step]:
                value = list(value)
                value[step] = new
        return value
    if isinstance(value, dict) and step in value:
        return _with(value, step, map_path(value[step], rest, fn))
    return value
