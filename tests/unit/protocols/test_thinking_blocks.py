"""Claude's thinking blocks in the pivot and sealed for a Responses client
(``protocols.thinking_blocks``)."""

from __future__ import annotations

from typing import Any

import pytest

from tollway.protocols import thinking_blocks
from tollway.protocols.codec import TranslationError

BLOCKS: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "Paris first.", "signature": "EqQBCgIYAhIM+/="},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p=="},
]


def test_a_native_block_keeps_exactly_what_makes_it_whole() -> None:
    assert thinking_blocks.block({**BLOCKS[0], "cache_control": {"type": "ephemeral"}}) == BLOCKS[0]
    assert thinking_blocks.block(BLOCKS[1]) == BLOCKS[1]
    assert thinking_blocks.block({"type": "thinking", "thinking": "no signature"}) is None
    assert thinking_blocks.block({"type": "text", "text": "x"}) is None


def test_sealed_blocks_come_back_exactly_and_only_from_the_gateways_seal() -> None:
    sealed = thinking_blocks.seal(BLOCKS)
    assert thinking_blocks.is_sealed(sealed) and not thinking_blocks.is_sealed("gAAAAABopenai")
    assert thinking_blocks.unseal(sealed, "input[1]") == BLOCKS
    with pytest.raises(TranslationError, match=r"input\[1\]\.encrypted_content is damaged"):
        thinking_blocks.unseal(sealed[:-7], "input[1]")


@pytest.mark.parametrize("given", [{"type": "thinking"}, [{"type": "thinking", "thinking": "x"}], ["x"]])
def test_a_requests_blocks_that_are_not_whole_are_refused(given: Any) -> None:
    with pytest.raises(TranslationError, match=r"messages\[1\]\.thinking_blocks"):
        thinking_blocks.of_message({"role": "assistant", "thinking_blocks": given}, "messages[1]")


def test_an_answers_blocks_that_are_not_whole_are_left_out() -> None:
    assert thinking_blocks.of_answer({"thinking_blocks": [BLOCKS[0], {"type": "thinking"}]}) == [BLOCKS[0]]
    assert thinking_blocks.of_answer({"thinking_blocks": "x"}) == []
