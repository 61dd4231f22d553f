"""The ``model`` field of a ``multipart/form-data`` request (SPEC §9): audio
transcriptions and translations, image edits and variations name their model in a form
field, not in JSON. It routes the call, is held to ``allow_models`` and is recorded, as
a JSON body's is. The body goes on as it came.

The parse is python-multipart's streaming parser over the body already read (bounded by
``max_body_bytes``), with callbacks that keep only the ``model`` field's bytes: a file
part is skipped as it passes, never copied.
"""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from tollway.errors import BadRequest

# A model name is short; a field past this is not one.
_MAX_MODEL = 256


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
        self.name: str | None = None
        self.value = bytearray()
        self.fields: dict[str, bytes] = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self.header.lower() == b"content-disposition":
            self.disposition += data[start:end]

    def on_header_end(self) -> None:
        self.header = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.disposition)
        name = params.get(b"name", b"").decode("utf-8", "replace")
        is_file = b"filename" in params
        taken = name in (self.files if is_file else self.wanted)
        self.name = name if taken and name not in self.fields else None
        self.disposition = b""

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
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    reader = _FieldReader(wanted, limit, files)
    callbacks = {name: getattr(reader, name) for name in (
        "on_header_field", "on_header_value", "on_header_end", "on_headers_finished", "on_part_data", "on_part_end"
    )}  # fmt: skip
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"request body is not a readable form: {exc}", reason="gateway.bad_request") from None
    return reader.fields


def model_field(content_type: str, body: bytes) -> str | None:
    """The ``model`` field's value, or None when the form has none; raises
    ``BadRequest`` for a form that cannot be read."""
    fields = form_fields(content_type, body, _MODEL, _MAX_MODEL)
    model = fields.get("model") if fields else None
    return model.decode("utf-8", "replace") or None if model else None


_MODEL = frozenset({"model"})
