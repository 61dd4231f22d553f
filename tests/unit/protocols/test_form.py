"""Fields of a multipart form (``protocols.form``)."""

from __future__ import annotations

import pytest

from tollway.errors import BadRequest
from tollway.protocols.form import model_field

CT = "multipart/form-data; boundary=XX"


def form(*parts: tuple[str, bytes]) -> bytes:
    out = b""
    for disposition, value in parts:
        out += b"--XX\r\nContent-Disposition: form-data; " + disposition.encode() + b"\r\n\r\n" + value + b"\r\n"
    return out + b"--XX--\r\n"


def test_the_model_field_is_found_whatever_comes_before_it() -> None:
    body = form(('name="file"; filename="a.wav"', b"\0" * 10_000), ('name="model"', b"whisper-1"))
    assert model_field(CT, body) == "whisper-1"


def test_a_file_part_named_model_is_not_the_model() -> None:
    assert model_field(CT, form(('name="model"; filename="m.bin"', b"gpt-4o"))) is None


def test_no_model_and_other_content_types_give_none() -> None:
    assert model_field(CT, form(('name="prompt"', b"hi"))) is None
    assert model_field("application/json", b"{}") is None


def test_a_model_field_past_its_bound_is_a_400() -> None:
    with pytest.raises(BadRequest):
        model_field(CT, form(('name="model"', b"m" * 300)))
