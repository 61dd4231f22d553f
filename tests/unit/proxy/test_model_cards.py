"""What a provider's model entry says, in either list shape (proxy/model_cards.py): times
a provider gives in any form never fail a listing."""

from __future__ import annotations

from tollway.proxy.model_cards import ModelCard, anthropic_model, card_of, openai_model


def test_an_anthropic_time_without_an_offset_is_utc_and_one_past_year_9999_is_its_end() -> None:
    card = card_of("anthropic", {"id": "m", "created_at": "2025-05-22T00:00:00"})
    assert card is not None and card.created == 1747872000
    assert anthropic_model(ModelCard("m", created=10**15))["created_at"] == "9999-12-31T23:59:59Z"
    assert anthropic_model(ModelCard("m"))["created_at"] == "1970-01-01T00:00:00Z"
    assert card_of("anthropic", {"id": "m", "created_at": "yesterday"}) == ModelCard("m")


def test_what_an_entry_does_not_say_is_filled_as_each_shape_expects() -> None:
    assert openai_model(ModelCard("m")) == {"id": "m", "object": "model", "created": 0, "owned_by": "tollway"}
    assert card_of("openai", {"id": "m", "created": True}) == ModelCard("m")  # a bool is no time
    assert card_of("gemini", {"name": "models/g", "displayName": "G"}) == ModelCard("g", display_name="G")
