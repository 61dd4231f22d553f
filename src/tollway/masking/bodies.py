"""Where the text a model reads sits in each API's request body, and where its answer
sits in the response; plus the small JSONPath dialect of ``deny_jsonpath``.

Every function here returns a new value with the texts passed through a function and
shares every part that did not change; the value it was given is never edited (it may be
the client's own parsed request). None recurses on the body's nesting: a walk of any
depth keeps its own stack (``map_strings``), and the protocol walks go a fixed number of
levels down, so no body can exhaust Python's recursion limit.

Request texts (``map_request``), never the model name or a parameter:

* OpenAI chat: ``messages[].content`` (a string, or the ``text`` of text parts and the
  ``refusal`` of refusal parts), the ``name`` and ``arguments`` of earlier tool calls.
* completions: ``prompt`` and ``suffix`` (strings or lists of strings); embeddings:
  ``input`` (likewise; token arrays pass).
* Anthropic messages and count_tokens: ``system`` and ``messages[].content``: text
  blocks, ``tool_use`` name and input, ``tool_result`` content, ``document`` blocks
  (``title``, ``context``, a text source's ``data``, a content source's text) and
  ``search_result`` blocks (``title``, content text). ``thinking`` and
  ``redacted_thinking`` blocks are left alone: they are signed, and a changed one is
  refused.
* responses: ``instructions``; ``input`` as a string or as items: messages (``input_text``
  and ``output_text`` parts, or a string), ``function_call`` name and arguments,
  ``function_call_output`` output, custom tool calls and their output. ``reasoning``
  items are left alone, as thinking blocks are.
* Every API: tool names and descriptions (OpenAI chat ``tools[].function``, responses and
  Anthropic ``tools[]``, legacy ``functions[]``) and the ``description`` strings inside
  their parameter schemas; the ``user`` field (and Anthropic ``metadata.user_id``),
  which reaches the provider though the model does not read it.

Answers: every string is restored (``map_answer``) except in Anthropic ``thinking`` and
``redacted_thinking`` blocks and responses ``reasoning`` items, which keep their
placeholders, so that the client can send them back unchanged and the originals still
never reach the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
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


def _texts(value: Any, fn: TextFn) -> Any:
    """A string, or each string of a list (token arrays and other values pass)."""
    return fn(value) if isinstance(value, str) else _each(value, lambda v: _text(v, fn))


# --- any depth, without recursion --------------------------------------------------------


def _items(container: dict[str, Any] | list[Any]) -> Iterator[tuple[Any, Any]]:
    return iter(container.items()) if isinstance(container, dict) else enumerate(container)


class _Frame:
    """A container being walked: where the walk is in it, what changed so far, and the
    key it sits under in its parent."""

    __slots__ = ("changes", "container", "items", "key")

    def __init__(self, container: dict[str, Any] | list[Any], key: Any) -> None:
        self.container = container
        self.items = _items(container)
        self.changes: dict[Any, Any] | None = None
        self.key = key

    def changed(self, key: Any, value: Any) -> None:
        if self.changes is None:
            self.changes = {}
        self.changes[key] = value

    def result(self) -> Any:
        if self.changes is None:
            return self.container
        if isinstance(self.container, dict):
            return {**self.container, **self.changes}
        out = list(self.container)
        for i, value in self.changes.items():
            out[i] = value
        return out


def map_strings(
    value: Any, fn: TextFn, *, keep: Callable[[dict[str, Any]], bool] | None = None, key: str | None = None
) -> Any:
    """Every string value inside ``value`` (keys untouched) passed through ``fn``, at any
    depth, with an explicit stack. Objects for which ``keep`` is true are left whole;
    with ``key``, only strings held under that key are passed (``description``)."""
    if isinstance(value, str):
        return fn(value) if key is None else value
    if not isinstance(value, dict | list) or (keep is not None and isinstance(value, dict) and keep(value)):
        return value
    stack = [_Frame(value, None)]
    while True:
        frame = stack[-1]
        for k, child in frame.items:
            if isinstance(child, str):
                if key is None or k == key:
                    new = fn(child)
                    if new is not child:
                        frame.changed(k, new)
            elif isinstance(child, dict | list) and not (keep is not None and isinstance(child, dict) and keep(child)):
                stack.append(_Frame(child, k))
                break
        else:
            stack.pop()
            new = frame.result()
            if not stack:
                return new
            if new is not frame.container:
                stack[-1].changed(frame.key, new)


def all_strings(value: Any, fn: TextFn) -> Any:
    """Every string value inside ``value`` (keys untouched)."""
    return map_strings(value, fn)


_SIGNED = frozenset({"thinking", "redacted_thinking", "reasoning"})


def _signed(obj: dict[str, Any]) -> bool:
    return obj.get("type") in _SIGNED


def map_answer(value: Any, fn: TextFn) -> Any:
    """Every string of a response body, but those of signed thinking and reasoning."""
    return map_strings(value, fn, keep=_signed)


# --- requests ---------------------------------------------------------------------------


def map_request(api: Api, body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``body`` with every prompt text of ``api`` passed through ``fn``."""
    if api == "chat":
        body = _with(body, "messages", _each(body.get("messages"), lambda m: _chat_message(m, fn)))
        body = _with(body, "functions", _each(body.get("functions"), lambda f: _tool_fields(f, fn)))
    elif api == "completions":
        body = _with(body, "prompt", _texts(body.get("prompt"), fn))
        body = _with(body, "suffix", _text(body.get("suffix"), fn))
    elif api == "embeddings":
        body = _with(body, "input", _texts(body.get("input"), fn))
    elif api in ("messages", "count_tokens"):
        body = _with(body, "system", _anthropic_content(body.get("system"), fn))
        body = _with(body, "messages", _each(body.get("messages"), lambda m: _anthropic_message(m, fn)))
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            body = _with(body, "metadata", _with(metadata, "user_id", _text(metadata.get("user_id"), fn)))
    elif api == "responses":
        body = _with(body, "instructions", _text(body.get("instructions"), fn))
        value = body.get("input")
        new = fn(value) if isinstance(value, str) else _each(value, lambda item: _responses_item(item, fn))
        body = _with(body, "input", new)
    else:
        return body
    body = _with(body, "tools", _each(body.get("tools"), lambda t: _tool(t, fn)))
    return _with(body, "user", _text(body.get("user"), fn))


def _tool(tool: Any, fn: TextFn) -> Any:
    """An OpenAI chat tool (``{"function": {...}}``), or a responses or Anthropic one."""
    if not isinstance(tool, dict):
        return tool
    function = tool.get("function")
    if isinstance(function, dict):
        return _with(tool, "function", _tool_fields(function, fn))
    return _tool_fields(tool, fn)


def _tool_fields(tool: Any, fn: TextFn) -> Any:
    if not isinstance(tool, dict):
        return tool
    tool = _with(tool, "name", _text(tool.get("name"), fn))
    tool = _with(tool, "description", _text(tool.get("description"), fn))
    for schema in ("parameters", "input_schema"):
        tool = _with(tool, schema, map_strings(tool.get(schema), fn, key="description"))
    return tool


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
    if isinstance(part, dict):
        kind = part.get("type")
        if kind == "text":
            return _with(part, "text", _text(part.get("text"), fn))
        if kind == "refusal":
            return _with(part, "refusal", _text(part.get("refusal"), fn))
    return part


def _call_arguments(call: Any, fn: TextFn) -> Any:
    if isinstance(call, dict):
        return _with(call, "function", _arguments(call.get("function"), fn))
    return call


def _arguments(function: Any, fn: TextFn) -> Any:
    if isinstance(function, dict):
        function = _with(function, "name", _text(function.get("name"), fn))
        return _with(function, "arguments", _text(function.get("arguments"), fn))
    return function


def _anthropic_message(message: Any, fn: TextFn) -> Any:
    if isinstance(message, dict):
        return _with(message, "content", _anthropic_content(message.get("content"), fn))
    return message


def _anthropic_content(content: Any, fn: TextFn, *, inner: bool = False) -> Any:
    if isinstance(content, str):
        return fn(content)
    return _each(content, lambda b: _anthropic_block(b, fn, inner))


def _anthropic_block(block: Any, fn: TextFn, inner: bool) -> Any:
    """A content block; ``inner``: one inside a tool result, a search result or a
    document, where the API nests no further containers (one that does anyway is walked
    as a whole)."""
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    if kind == "text":
        return _with(block, "text", _text(block.get("text"), fn))
    if kind == "document":
        block = _with(block, "title", _text(block.get("title"), fn))
        block = _with(block, "context", _text(block.get("context"), fn))
        return _with(block, "source", _document_source(block.get("source"), fn, inner))
    if kind in ("tool_result", "search_result"):
        if inner:
            return map_strings(block, fn)
        block = _with(block, "title", _text(block.get("title"), fn))
        return _with(block, "content", _anthropic_content(block.get("content"), fn, inner=True))
    if kind == "tool_use":
        block = _with(block, "name", _text(block.get("name"), fn))
        return _with(block, "input", map_strings(block.get("input"), fn))
    return block  # thinking (signed), images, server tools' blocks


def _document_source(source: Any, fn: TextFn, inner: bool) -> Any:
    if not isinstance(source, dict):
        return source
    kind = source.get("type")
    if kind == "text":
        return _with(source, "data", _text(source.get("data"), fn))
    if kind == "content":
        content = source.get("content")
        # In a tool result only its text blocks: a document in there nests nothing deeper.
        new = _text_blocks(content, fn) if inner else _anthropic_content(content, fn, inner=True)
        return _with(source, "content", new)
    return source  # base64 (a PDF) or a URL: no text of ours to read


def _text_blocks(content: Any, fn: TextFn) -> Any:
    if isinstance(content, str):
        return fn(content)
    return _each(content, lambda b: _with(b, "text", _text(b.get("text"), fn)) if isinstance(b, dict) else b)


def _responses_item(item: Any, fn: TextFn) -> Any:
    if not isinstance(item, dict):
        return item
    kind = item.get("type", "message")
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            return _with(item, "content", fn(content))
        return _with(item, "content", _each(content, lambda p: _responses_part(p, fn)))
    if kind in ("function_call", "custom_tool_call"):
        item = _with(item, "name", _text(item.get("name"), fn))
        item = _with(item, "arguments", _text(item.get("arguments"), fn))
        return _with(item, "input", _text(item.get("input"), fn))
    if kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        if isinstance(output, str):
            return _with(item, "output", fn(output))
        return _with(item, "output", _each(output, lambda p: _responses_part(p, fn)))
    return item  # reasoning (signed, like thinking), references, built-in tools' calls


def _responses_part(part: Any, fn: TextFn) -> Any:
    if isinstance(part, dict):
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            return _with(part, "text", _text(part.get("text"), fn))
        if kind == "refusal":
            return _with(part, "refusal", _text(part.get("refusal"), fn))
    return part


def map_all_but_model(body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``deny_raw``: every string value in the body except the model name."""
    out = body
    for k, v in body.items():
        if k != "model":
            out = _with(out, k, map_strings(v, fn))
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
