"""Fields of a multipart form (``protocols.form``)."""

from __future__ import annotations

import pytest

from tollway.errors import BadRequest
from tollway.protocols.form import form_fields, map_text_fields, map_urlencoded_fields, model_field

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


def _upper(text: str) -> str:
    return text.upper()


def test_text_fields_are_mapped_and_files_model_and_order_kept() -> None:
    blob = b"\r\n--X\r\n--XX-\r\n\xff\x00" * 500  # boundary lookalikes and non-UTF-8 bytes in a file
    body = (
        form(
            ('name="model"', b"gpt-image-1"),
            ('name="prompt"', "line one\r\n--XY not the end é".encode()),
            ('name="image"; filename="a.png"', blob),
            ('name="raw"', b"\xff\xfe not UTF-8"),
        )
        + b"epilogue"
    )
    out = map_text_fields(CT, body, _upper, frozenset({"model"}))
    assert out is not None and out is not body
    wanted = frozenset({"model", "prompt", "raw"})
    assert form_fields(CT, out, wanted, len(out), files=frozenset({"image"})) == {
        "model": b"gpt-image-1",
        "prompt": "LINE ONE\r\n--XY NOT THE END É".encode(),
        "image": blob,
        "raw": b"\xff\xfe not UTF-8",
    }
    assert out.index(b'name="model"') < out.index(b'name="prompt"') < out.index(b'name="image"')


def test_a_form_with_nothing_to_change_is_the_body_itself_and_other_bodies_none() -> None:
    body = form(('name="prompt"', b"HELLO"))
    assert map_text_fields(CT, body, _upper, frozenset()) is body
    assert map_text_fields("application/json", b"{}", _upper, frozenset()) is None
    with pytest.raises(BadRequest):
        map_text_fields(CT, b'--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--XY', _upper, frozenset())


def test_a_text_part_sent_as_a_file_is_read_and_an_upload_field_is_not() -> None:
    body = form(('name="prompt"; filename="p.txt"', b"secret"), ('name="image"; filename="a.txt"', b"plain text"))
    out = map_text_fields(CT, body, _upper, frozenset({"image"}))
    assert out is not None
    got = form_fields(CT, out, frozenset(), len(out), files=frozenset({"prompt", "image"}))
    assert got == {"prompt": b"SECRET", "image": b"plain text"}


def test_a_part_to_read_in_a_transfer_encoding_is_a_400() -> None:
    encoded = (
        b'--XX\r\nContent-Disposition: form-data; name="prompt"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nc2VjcmV0\r\n--XX--\r\n"
    )
    with pytest.raises(BadRequest, match="transfer encoding"):
        map_text_fields(CT, encoded, _upper, frozenset())
    assert map_text_fields(CT, encoded, _upper, frozenset({"prompt"})) is encoded  # not read: as it came


def test_urlencoded_fields_are_mapped_in_order() -> None:
    urlencoded = "application/x-www-form-urlencoded; charset=utf-8"
    body = b"model=gpt-image-1&prompt=mail+bob%40x.com&n=&prompt=two"
    assert map_urlencoded_fields(urlencoded, body, _upper, frozenset({"model"})) == (
        b"model=gpt-image-1&prompt=MAIL+BOB%40X.COM&n=&prompt=TWO"
    )
    assert map_urlencoded_fields(urlencoded, b"model=m", _upper, frozenset({"model"})) == b"model=m"
    assert map_urlencoded_fields(urlencoded, b"p=%FF", _upper, frozenset()) == b"p=%FF"  # not UTF-8: as it came
    assert map_urlencoded_fields(CT, body, _upper, frozenset()) is None


@pytest.mark.parametrize(
    "part",
    [
        b'Content-Disposition: form-data; name="prompt"; name="model"\r\n',
        b"Content-Disposition: form-data; name=\"prompt\"; NAME*=utf-8''model\r\n",
        b'Content-Disposition: form-data; name="prompt"\r\nContent-Disposition: form-data; name="model"\r\n',
    ],
    ids=["two-names", "name-and-extended-name", "two-headers"],
)
def test_a_part_naming_its_field_ambiguously_is_a_400(part: bytes) -> None:
    """A part read here as ``model`` (the last name: masking skipped it, the record took
    an e-mail address for the model) may be read upstream as ``prompt`` (the first)."""
    body = b"--XX\r\n" + part + b"\r\nbob@example.com\r\n--XX--\r\n"
    for read in (lambda: model_field(CT, body), lambda: map_text_fields(CT, body, str.upper, frozenset())):
        with pytest.raises(BadRequest, match="ambiguously"):
            read()
    # A file's name is no second name.
    fine = form(('name="image"; filename="name=x.png"', b"\x89PNG"), ('name="model"', b"gpt-image-1"))
    assert model_field(CT, fine) == "gpt-image-1"
