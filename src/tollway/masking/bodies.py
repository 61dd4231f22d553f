"""Where the text a model reads sits in a request body, and where its answer sits in the
response; plus the small JSONPath dialect of ``deny_jsonpath``.

Every function here returns a new value with the texts passed through a function and
shares every part that did not change; the value it was given is never edited (it may be
the client's own parsed request). None recurses on the body's nesting: a walk of any
depth keeps its own stack (``map_strings``), so no body can exhaust Python's recursion
limit.

Requests (``map_request``, for every API that carries prompt text): every string value,
wherever it sits, but those that name or identify things for the provider or carry
binary data (``SKIPPED_KEYS``: the model, roles, types, ids, enumerations, image and
audio payloads and URLs) and signed blocks. Listing the fields that hold prompt text
instead would miss the next one a provider adds (a predicted output, a citation, a
tool's schema, a message's ``name``) and every shape no one documented; walking every
string misses none. Anthropic ``thinking`` and ``redacted_thinking`` blocks and
responses ``reasoning`` items are left alone: they are signed, and a changed one is
refused; base64 sources are binary.

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
    value: Any,
    fn: TextFn,
    *,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    key: str | None = None,
    skip: frozenset[str] = frozenset(),
) -> Any:
    """Every string value inside ``value`` (keys untouched) passed through ``fn``, at any
    depth, with an explicit stack. Objects for which ``keep`` is true are left whole;
    with ``key``, only strings held under that key are passed (``description``); what is
    held under a key in ``skip`` (a string or a whole object or list) is left alone."""
    if isinstance(value, str):
        return fn(value) if key is None else value
    if not isinstance(value, dict | list) or (keep is not None and isinstance(value, dict) and keep(value)):
        return value
    stack = [_Frame(value, None)]
    while True:
        frame = stack[-1]
        for k, child in frame.items:
            if k in skip:
                continue
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
    kind = obj.get("type")
    return type(kind) is str and kind in _SIGNED  # (a client's ``type`` may be any JSON value)


def map_answer(value: Any, fn: TextFn) -> Any:
    """Every string of a response body, but those of signed thinking and reasoning."""
    return map_strings(value, fn, keep=_signed)


# --- requests ---------------------------------------------------------------------------


# What names or identifies things for the provider, or carries binary data, never text a
# model reads as text: left as it is, so that ids, roles and enumerations still mean what
# they meant and no image or audio is changed (a detector that took a digit run in a tool
# call's id, or in base64, for a phone number would break the call).
SKIPPED_KEYS = frozenset(
    {
        "model",
        "role",
        "type",
        "object",
        "id",
        "call_id",
        "tool_call_id",
        "tool_use_id",
        "previous_response_id",
        "file_id",
        "signature",
        "encrypted_content",
        "media_type",
        "detail",
        "status",
        "service_tier",
        "reasoning_effort",
        "truncation",
        "include",
        "modalities",
        "voice",
        "encoding_format",
        # Binary payloads and where to fetch them.
        "url",
        "image_url",
        "input_audio",
        "file_data",
    }
)


def _kept_whole(obj: dict[str, Any]) -> bool:
    """Signed thinking and reasoning (a changed one is refused), and base64 sources."""
    kind = obj.get("type")
    return type(kind) is str and (kind in _SIGNED or kind == "base64")  # (any JSON value may come)


def map_request(api: Api, body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``body`` (a request of a prompt API: ``api`` is one of ``PROMPT_APIS``) with every
    string passed through ``fn`` but those under ``SKIPPED_KEYS`` and in what
    ``_kept_whole`` keeps: whatever field a text arrives in (a message, a predicted
    output, a tool's schema, a citation, a shape no one documented), it is seen, so no
    field and no unexpected shape carries a text past the plugin."""
    out: dict[str, Any] = map_strings(body, fn, keep=_kept_whole, skip=SKIPPED_KEYS)
    return out


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
