"""The ``model`` field of a ``multipart/form-data`` request (SPEC §9): audio
transcriptions and translations, image edits and variations name their model in a form
field, not in JSON. It routes the call, is held to ``allow_models`` and is recorded, as
a JSON body's is. The body goes on as it came, unless ai-data-masking rewrote its text
fields (``map_text_fields``: an image edit's ``prompt``).

The parse is python-multipart's streaming parser over the body already read (bounded by
``max_body_bytes``), with callbacks that keep only the ``model`` field's bytes: a file
part is skipped as it passes, never copied.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from tollway.errors import BadRequest

# A model name is short; a field past this is not one.
_MAX_MODEL = 256


# A ``name`` (or RFC 5987 ``name*``) parameter of a Content-Disposition, not
# ``filename``'s: one part naming two fields is read as the last by the parser here
# and may be read as the first by a server upstream.
_NAME_PARAM = re.compile(rb"(?:^|;)\s*name\*?\s*=", re.IGNORECASE)


def _ambiguous(field: str) -> BadRequest:
    return BadRequest(
        f"a part of the form names its field ambiguously ({field}): send one Content-Disposition with one name",
        reason="gateway.bad_request",
    )


def _part_name(disposition: bytes) -> str:
    """The field a part's Content-Disposition names; ``BadRequest`` for two names."""
    if len(_NAME_PARAM.findall(disposition)) > 1:
        raise _ambiguous("two names")
    _, params = parse_options_header(disposition)
    return params.get(b"name", b"").decode("utf-8", "replace")


class _FieldReader:
    """The parser's callbacks: each part's headers read for its name; the data kept only
    for the parts ``wanted`` names, each at most ``limit`` bytes. A file part (one with a
    ``filename``) counts only where ``files`` names it (a batch's JSONL), never as a
    text field of the same name."""

    def __init__(self, wanted: frozenset[str], limit: int, files: frozenset[str]) -> None:
        self.wanted = wanted
        self.files = files
        self.limit = limit
        self.header = b""
        self.disposition = b""
        self.dispositions = 0  # Content-Disposition headers of the current part
        self.name: str | None = None
        self.value = bytearray()
        self.fields: dict[str, bytes] = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self.header.lower() == b"content-disposition":
            self.disposition += data[start:end]

    def on_header_end(self) -> None:
        if self.header.lower() == b"content-disposition":
            self.dispositions += 1
            if self.dispositions > 1:
                raise _ambiguous("two Content-Disposition headers")
        self.header = b""

    def on_headers_finished(self) -> None:
        name = _part_name(self.disposition)
        _, params = parse_options_header(self.disposition)
        is_file = b"filename" in params
        taken = name in (self.files if is_file else self.wanted)
        self.name = name if taken and name not in self.fields else None
        self.disposition = b""
        self.dispositions = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.name is not None:
            if len(self.value) + end - start > self.limit:
                raise BadRequest(f"the form's {self.name} field is too long", reason="gateway.bad_request")
            self.value += data[start:end]

    def on_part_end(self) -> None:
        if self.name is not None:
            self.fields[self.name] = bytes(self.value)
        self.name = None
        self.value = bytearray()


def form_fields(
    content_type: str, body: bytes, wanted: frozenset[str], limit: int, files: frozenset[str] = frozenset()
) -> dict[str, bytes] | None:
    """The ``wanted`` text fields and ``files`` file parts of a ``multipart/form-data``
    body (the first of each name), or None when it is not one; raises ``BadRequest`` for
    a form that cannot be read."""
    reader = _FieldReader(wanted, limit, files)
    callbacks = (
        "on_header_field",
        "on_header_value",
        "on_header_end",
        "on_headers_finished",
        "on_part_data",
        "on_part_end",
    )
    return reader.fields if _parse(content_type, body, reader, callbacks) is not None else None


def _parse(
    content_type: str, body: bytes, reader: object, callbacks: tuple[str, ...], *, whole: bool = False
) -> bytes | None:
    """``body`` fed to python-multipart's parser, calling ``reader``'s ``callbacks``: the
    form's boundary, or None when ``content_type`` is no form's (nothing read); raises
    ``BadRequest`` for a form that cannot be read, or, ``whole``, that is cut short."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    parser = MultipartParser(boundary, {name: getattr(reader, name) for name in callbacks})  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"request body is not a readable form: {exc}", reason="gateway.bad_request") from None
    if whole and parser.state != MultipartState.END:
        # Cut short: the last part's text may be held back unread (a form rebuilt from
        # what was read would drop it; a field is looked for in what there is).
        raise BadRequest("request body is not a readable form: no closing boundary", reason="gateway.bad_request")
    return boundary


class _Part:
    __slots__ = ("data", "encoded", "headers", "name")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.data: list[bytes | memoryview] = []
        self.name = ""
        self.encoded = b""  # a Content-Transfer-Encoding other than the identity ones


# The transfer encodings that leave a part's bytes as they are (RFC 2045); RFC 7578
# forbids senders any other in a form.
_IDENTITY = frozenset({b"", b"7bit", b"8bit", b"binary"})


class _PartReader:
    """Callbacks that keep every part: its header lines, its name, whether it is a file,
    and its data (slices of the body where the parser hands them out of it, not copies)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.view = memoryview(body)
        self.parts: list[_Part] = []
        self.field = b""
        self.value = b""

    def on_part_begin(self) -> None:
        self.parts.append(_Part())

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        part = self.parts[-1]
        part.headers.append((self.field, self.value))
        field = self.field.lower()
        if field == b"content-disposition":
            if any(name.lower() == b"content-disposition" for name, _ in part.headers[:-1]):
                raise _ambiguous("two Content-Disposition headers")
            part.name = _part_name(self.value)
        elif field == b"content-transfer-encoding" and self.value.strip().lower() not in _IDENTITY:
            part.encoded = self.value.strip()
        self.field = self.value = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        # (The parser hands out the body itself, or bytes it held back at a would-be
        # boundary: those are copied, as they are not in place.)
        self.parts[-1].data.append(self.view[start:end] if data is self.body else bytes(data[start:end]))


def map_text_fields(content_type: str, body: bytes, fn: Callable[[str], str], skip: frozenset[str]) -> bytes | None:
    """A ``multipart/form-data`` body with the text of every part not named in ``skip``
    (the model, enumerations, the API's own uploads) passed through ``fn``, whether or
    not it says it is a file (a server may read a text field sent as one): ``body``
    itself when nothing changed, None when it is not such a form. A part that is not
    UTF-8 (an image, audio) is left as it is. The parts keep their order, headers and
    the client's boundary (its content type still holds); an epilogue, which no server
    reads, is dropped. Raises ``BadRequest`` for a form that cannot be read, ends before
    its closing boundary, or has a part to read in a transfer encoding (base64: its
    text could not be read as sent)."""
    reader = _PartReader(body)
    callbacks = ("on_part_begin", "on_header_field", "on_header_value", "on_header_end", "on_part_data")
    boundary = _parse(content_type, body, reader, callbacks, whole=True)
    if boundary is None:
        return None
    changed = False
    out: list[bytes | memoryview] = []
    for part in reader.parts:
        data = part.data
        if part.name not in skip:
            if part.encoded:
                encoding = part.encoded.decode("latin-1")
                raise BadRequest(
                    f"the form's {part.name!r} part is sent in the transfer encoding {encoding!r}: "
                    "send it as it is (RFC 7578)",
                    reason="gateway.bad_request",
                )
            try:
                text = b"".join(data).decode("utf-8")
            except UnicodeDecodeError:
                text = None
            new = fn(text) if text is not None else None
            if new is not None and new != text:
                data, changed = [new.encode()], True
        out.append(b"--" + boundary + b"\r\n")
        out.extend(b"%s: %s\r\n" % header for header in part.headers)
        out.append(b"\r\n")
        out.extend(data)
        out.append(b"\r\n")
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out) if changed else body


def map_urlencoded_fields(
    content_type: str, body: bytes, fn: Callable[[str], str], skip: frozenset[str]
) -> bytes | None:
    """An ``application/x-www-form-urlencoded`` body with the value of every field not
    named in ``skip`` passed through ``fn`` (a server that takes forms may take this
    one): ``body`` itself when nothing changed, None when it is not such a body. The
    fields keep their order; a body that is not UTF-8 is left as it is."""
    kind, _ = parse_options_header(content_type)
    if kind != b"application/x-www-form-urlencoded":
        return None
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return body
    mapped = [(name, value if name in skip else fn(value)) for name, value in fields]
    return urlencode(mapped).encode() if mapped != fields else body


def model_field(content_type: str, body: bytes) -> str | None:
    """The ``model`` field's value, or None when the form has none; raises
    ``BadRequest`` for a form that cannot be read."""
    fields = form_fields(content_type, body, _MODEL, _MAX_MODEL)
    model = fields.get("model") if fields else None
    return model.decode("utf-8", "replace") or None if model else None


_MODEL = frozenset({"model"})
