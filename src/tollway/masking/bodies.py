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
    """A container being walked: where the walk is in it, what changed so far (values,
    and the names of an object's members), and the key it sits under in its parent.
    ``free``, ``names`` and ``binary`` say how a request's walk reads it (``map_request``)."""

    __slots__ = ("all_names", "binary", "changes", "container", "free", "items", "key", "names", "renames")

    def __init__(
        self, container: dict[str, Any] | list[Any], key: Any, *, free: bool = False, names: bool = False,
        all_names: bool = False, binary: bool = False,
    ) -> None:  # fmt: skip
        self.container = container
        self.items = _items(container)
        self.changes: dict[Any, Any] | None = None
        self.renames: dict[str, str] | None = None
        self.key = key
        self.free = free
        self.all_names = all_names
        self.names = (names or all_names) and isinstance(container, dict)
        self.binary = binary

    def changed(self, key: Any, value: Any) -> None:
        if self.changes is None:
            self.changes = {}
        self.changes[key] = value

    def name(self, key: Any, fn: TextFn) -> None:
        """The member name ``key`` passed through ``fn`` (a name may be text too: a JSON
        schema's property, a metadata key)."""
        if isinstance(key, str):
            new = fn(key)
            if new is not key and new != key:
                if self.renames is None:
                    self.renames = {}
                self.renames[key] = new

    def result(self) -> Any:
        if self.changes is None and self.renames is None:
            return self.container
        changes = self.changes or {}
        if isinstance(self.container, dict):
            if self.renames is None:
                return {**self.container, **changes}
            renames = self.renames
            return {renames.get(k, k): changes.get(k, v) for k, v in self.container.items()}
        out = list(self.container)
        for i, value in changes.items():
            out[i] = value
        return out


# Whole numbers from this size up are read as text too (``map_request``): the shortest
# phone number a detector takes has 7 digits; smaller ones are counts and amounts.
_DIGITS_READ = 1_000_000


def map_strings(
    value: Any,
    fn: TextFn,
    *,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    key: str | None = None,
    skip: frozenset[str] = frozenset(),
    names: bool = False,
    names_under: frozenset[str] = frozenset(),
    json_texts: frozenset[str] = frozenset(),
    json_fn: TextFn | None = None,
    numbers: bool = False,
) -> Any:
    """Every string value inside ``value`` passed through ``fn``, at any depth, with an
    explicit stack; member names too with ``names``, or inside objects held under a key
    in ``names_under`` (else keys untouched). Objects for which ``keep`` is true are
    left whole; with ``key``, only strings held under that key are passed
    (``description``); what is held under a key in ``skip`` (a string or a whole object
    or list) is left alone; with ``numbers``, large whole numbers are passed as their
    digits and replaced by what comes back when it differs."""
    if isinstance(value, str):
        return fn(value) if key is None else value
    if not isinstance(value, dict | list) or (keep is not None and isinstance(value, dict) and keep(value)):
        return value
    stack = [_Frame(value, None, names=names)]
    while True:
        frame = stack[-1]
        for k, child in frame.items:
            if frame.names:
                frame.name(k, fn)
            if k in skip:
                continue
            if isinstance(child, str):
                if key is None or k == key:
                    new = json_fn(child) if json_fn is not None and k in json_texts else fn(child)
                    if new is not child:
                        frame.changed(k, new)
            elif numbers and type(child) is int and not -_DIGITS_READ < child < _DIGITS_READ:
                digits = str(child)  # (read as ``map_request`` reads one)
                if (new := fn(digits)) != digits:
                    frame.changed(k, new)
            elif isinstance(child, dict | list) and not (keep is not None and isinstance(child, dict) and keep(child)):
                stack.append(_Frame(child, k, names=frame.names or k in names_under))
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
# Where an assistant message holds signed blocks: Anthropic's ``content``; a chat
# client's ``thinking_blocks`` (Claude's blocks as the gateway gave them).
_SIGNED_LISTS = frozenset({"content", "thinking_blocks"})
# Where an answer's tool call carries its input as an object (Anthropic, Gemini).
_TOOL_INPUTS = frozenset({"input", "args"})


def _signed(obj: dict[str, Any]) -> bool:
    kind = obj.get("type")
    return type(kind) is str and kind in _SIGNED  # (a client's ``type`` may be any JSON value)


def map_answer(value: Any, fn: TextFn, json_fn: TextFn | None = None) -> Any:
    """Every string of a response body, but those of signed thinking and reasoning; and
    the member names of a tool call's input (which may use a masked schema property as
    a name). ``json_fn`` takes the strings that are JSON text (a tool call's
    ``arguments``) in ``fn``'s place."""
    if json_fn is None:
        return map_strings(value, fn, keep=_signed, names_under=_TOOL_INPUTS)
    return map_strings(value, fn, keep=_signed, names_under=_TOOL_INPUTS, json_texts=_JSON_TEXTS, json_fn=json_fn)


# Where an answer holds JSON as text: a tool call's arguments (chat, responses).
_JSON_TEXTS = frozenset({"arguments"})


# --- requests ---------------------------------------------------------------------------


# What names or identifies things for the provider, or says which of its options to use:
# a string (or a list of strings) under these names in the protocol's own structure is
# left as it is, so that ids, roles and enumerations still mean what they meant (a
# detector that took a digit run in a tool call's id for a phone number would break the
# call). An object or a list of objects under one of them is read like any other: a JSON
# schema's property may well be named ``url`` or ``id``.
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
        "format",
        "mime_type",
        "mimeType",
        "thoughtSignature",  # Gemini's signed thoughts
        "thought_signature",
        # Binary payloads and where to fetch them.
        "url",
        "image_url",
        "file_data",
        "fileUri",  # Gemini's fileData
        "file_uri",
    }
)
# What an answer says about itself rather than what the model wrote (why it stopped,
# which model and version, when): not checked for deny words, or a deny word such as
# "stop" would refuse every finished answer.
_ANSWER_LABELS = frozenset(
    {"finish_reason", "stop_reason", "stop_sequence", "finishReason", "system_fingerprint", "modelVersion",
     "responseId", "created", "created_at", "object", "service_tier"}
)  # fmt: skip
_NOT_WRITTEN = SKIPPED_KEYS | _ANSWER_LABELS


def check_answer(value: Any, check: Callable[[str], None]) -> None:
    """Every text of an answer the model wrote passed to ``check`` (which raises to
    refuse it): every string but identifiers and labels (``SKIPPED_KEYS``, above) and
    signed thinking and reasoning, which are neither restored nor checked."""

    def look(text: str) -> str:
        check(text)
        return text

    map_strings(value, look, keep=_signed, skip=_NOT_WRITTEN)


# Objects whose members are the client's own data, names and all, not the protocol's: a
# tool call's input (Anthropic's ``input``, Gemini's ``args``), ``metadata``. Nothing in
# them is an identifier of the protocol's: every string and every name is read.
_FREE_FORM = frozenset({"input", "args", "arguments", "metadata"})
# JSON schemas (a tool's parameters, a structured output's schema): the client's content
# too, whatever keywords it uses (``format``, ``examples``, ``default``, …): every string
# is read, and the names of its ``properties``.
_SCHEMAS = frozenset({"parameters", "input_schema", "schema"})
# Objects whose member names a model reads: a JSON schema's ``properties``.
_NAMED = frozenset({"properties"})
# Objects whose ``data`` is binary (base64 audio, an image, a PDF): ``input_audio``,
# Gemini's ``inline_data``, and any source of ``"type": "base64"``.
_BINARY_HOLDERS = frozenset({"input_audio", "inline_data", "inlineData"})


def _enumeration(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _binary(key: Any, obj: dict[str, Any]) -> bool:
    return key in _BINARY_HOLDERS or obj.get("type") == "base64"


def _signed_block(stack: list[_Frame], block: dict[str, Any]) -> bool:
    """Whether ``block`` (a member of the list ``stack[-1]`` walks) is a signed block
    where the protocol has one: Anthropic ``thinking`` or ``redacted_thinking`` in an
    assistant message's content (``messages[i].content[j]``) or, as a chat client sends
    them back, its ``thinking_blocks``; a Responses ``reasoning`` item of the ``input``.
    Anywhere else such a ``type`` is no reason to skip a text."""
    kind = block.get("type")
    if type(kind) is not str or kind not in _SIGNED:
        return False
    depth, top = len(stack), stack[-1]
    if kind == "reasoning":
        return depth == 2 and top.key == "input"
    if depth != 4 or top.key not in _SIGNED_LISTS or stack[1].key != "messages":
        return False
    message = stack[2].container
    return isinstance(message, dict) and message.get("role") == "assistant"


def map_request(api: Api, body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``body`` (a request of a prompt API: ``api`` is one of ``PROMPT_APIS``) with every
    string passed through ``fn``, whatever field it arrives in (a message, a predicted
    output, a tool's schema and its property names, a citation, metadata, a shape no one
    documented), so no field and no unexpected shape carries a text past the plugin. Left
    as they are: identifiers and enumerations (strings under ``SKIPPED_KEYS``, outside
    the client's own data and schemas), binary ``data``, and signed thinking and
    reasoning blocks (a changed one is refused) where the protocol has them."""
    stack = [_Frame(body, None)]
    while True:
        frame = stack[-1]
        free, all_names = frame.free, frame.all_names
        for k, child in frame.items:
            if frame.names:
                frame.name(k, fn)
            if not free and (
                (k in SKIPPED_KEYS and _enumeration(child)) or (frame.binary and k == "data" and type(child) is str)
            ):
                continue
            if isinstance(child, str):
                new = fn(child)
                if new is not child:
                    frame.changed(k, new)
            elif type(child) is int and not -_DIGITS_READ < child < _DIGITS_READ:
                # A card or phone number sent as a JSON number (a tool's input, metadata):
                # read as its digits; a match goes as the placeholder (a string).
                digits = str(child)
                new = fn(digits)
                if new != digits:
                    frame.changed(k, new)
            elif isinstance(child, dict):
                if not free and type(k) is int and _signed_block(stack, child):
                    continue
                data = all_names or k in _FREE_FORM
                stack.append(_Frame(child, k, free=free or data or k in _SCHEMAS, names=k in _NAMED,
                                    all_names=data, binary=not free and _binary(k, child)))  # fmt: skip
                break
            elif isinstance(child, list):
                stack.append(_Frame(child, k, free=free, all_names=all_names))
                break
        else:
            stack.pop()
            new = frame.result()
            if not stack:
                out: dict[str, Any] = new
                return out
            if new is not frame.container:
                stack[-1].changed(frame.key, new)


def map_all_but_model(body: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``deny_raw``: every string value and member name in the body except the model name."""
    out = body
    for k, v in body.items():
        if k != "model":
            out = _with(out, k, map_strings(v, fn, names=True))
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
