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


class _ModelFinder:
    """The parser's callbacks: headers of each part read for its name, data kept only
    for the ``model`` part."""

    def __init__(self) -> None:
        self.header = b""
        self.disposition = b""
        self.in_model = False
        self.value = bytearray()
        self.model: str | None = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self.header.lower() == b"content-disposition":
            self.disposition += data[start:end]

    def on_header_end(self) -> None:
        self.header = b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self.disposition)
        self.in_model = params.get(b"name") == b"model" and b"filename" not in params
        self.disposition = b""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_model:
            if len(self.value) + end - start > _MAX_MODEL:
                raise BadRequest("the form's model field is too long", reason="gateway.bad_request")
            self.value += data[start:end]

    def on_part_end(self) -> None:
        if self.in_model and self.model is None:
            self.model = self.value.decode("utf-8", "replace")
        self.in_model = False
        self.value = bytearray()


def model_field(content_type: str, body: bytes) -> str | None:
    """The ``model`` field's value, or None when the form has none; raises
    ``BadRequest`` for a form that cannot be read."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        return None
    finder = _ModelFinder()
    callbacks = {name: getattr(finder, name) for name in (
        "on_header_field", "on_header_value", "on_header_end", "on_headers_finished", "on_part_data", "on_part_end"
    )}  # fmt: skip
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"request body is not a readable form: {exc}", reason="gateway.bad_request") from None
    return finder.model or None
