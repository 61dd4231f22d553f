"""The objects a request body names (``proxy.ownership.named_in``): found under their
names at any depth, in any shape the providers use, and nothing else."""

from __future__ import annotations

from typing import Any

from tollway.proxy.ownership import named_in


def test_every_shape_that_names_an_object_is_found() -> None:
    body = {
        "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}],
        "input": [{"content": [{"type": "input_file", "file_id": "file-2"}, {"type": "input_image", "file_id": ""}]}],
        "tools": [
            {"type": "file_search", "vector_store_ids": ["vs-1", "vs-2", 3]},
            {"type": "code_interpreter", "container": {"type": "auto", "file_ids": ["file-3"]}},
            {"type": "code_interpreter", "container": "cntr-1"},
        ],
        "tool_resources": {"file_search": {"vector_store_ids": ["vs-3"]}},
        "container_id": "cntr-2",
    }
    assert named_in(body) == {
        "file": {"file-1", "file-2", "file-3"},
        "vector_store": {"vs-1", "vs-2", "vs-3"},
        "container": {"cntr-1", "cntr-2"},
    }


def test_text_and_other_ids_name_nothing() -> None:
    body = {"messages": [{"content": "my file_id is file-9"}], "previous_response_id": "r", "id": "x", "n": [1, None]}
    assert named_in(body) == {}
    assert named_in("file_id") == {} and named_in([]) == {}


def test_nesting_deeper_than_the_recursion_limit_is_walked() -> None:
    body: Any = {"file_id": "file-deep"}
    for _ in range(5_000):
        body = {"x": [body]}
    assert named_in(body) == {"file": {"file-deep"}}


def test_googles_names_are_read_only_for_a_call_that_may_go_to_google() -> None:
    """A URL ending ``/files/x`` names a Gemini file only to Google: to any other provider
    it is an image or a link, which was refused 404 when another consumer held a Gemini
    file of that id, or pinned to one key (a red team's findings)."""
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://cdn.example/files/cat"}}]}
        ],
        "cachedContent": "cachedContents%2Fc1",
        "note": "see files/readme for more",  # (text with blanks names nothing, even to Google)
    }
    assert named_in(body) == {}
    assert named_in(body, google=True) == {"file": {"cat"}, "cached_content": {"c1"}}
