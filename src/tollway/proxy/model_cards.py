"""What each protocol's model list says of a model, and the model in each list shape.

The gateway answers ``GET /v1/models`` in the client's shape (OpenAI's ``{"id",
"object": "model", "created", "owned_by"}``, or Anthropic's ``{"type": "model", "id",
"display_name", "created_at"}`` for a client sending ``anthropic-version``, Google's
``{"name": "models/…", "displayName", …}`` for a client of Gemini's own API) from the
lists of providers that may speak another protocol, and ``GET /v1/models/{id}`` from the
provider that serves the model. A ``ModelCard`` carries what one shape can say in the
other: when the model was made, who owns it, its display name; what a provider did not
say is filled as each shape's readers expect (the id as its display name, 0 and the
epoch as its time, ``tollway`` as its owner).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollway.consumers.consumer import iso_instant, parse_instant
from tollway.protocols.registry import codec_for


@dataclass(frozen=True, slots=True)
class ModelCard:
    id: str
    created: int | None = None  # Unix seconds
    owned_by: str | None = None
    display_name: str | None = None
    # Gemini's own entry for the model (``name``, ``displayName``, token limits,
    # ``supportedGenerationMethods``…), when a Gemini provider's list gave one: what a
    # Gemini client is shown as it stands.
    gemini: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)


def _seconds(iso: Any) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        return int(parse_instant(iso))
    except ValueError:
        return None


def card_of(protocol: str, obj: Any) -> ModelCard | None:
    """One model as ``protocol``'s model list or details answer describes it."""
    if not isinstance(obj, dict):
        return None
    if protocol == "gemini":
        name = obj.get("name")
        if not isinstance(name, str):
            return None
        shown = obj.get("displayName")
        return ModelCard(
            name.removeprefix("models/"), display_name=shown if isinstance(shown, str) else None, gemini=obj
        )
    ident = obj.get("id")
    if not isinstance(ident, str):
        return None
    if protocol == "anthropic":
        shown = obj.get("display_name")
        return ModelCard(ident, _seconds(obj.get("created_at")), None, shown if isinstance(shown, str) else None)
    created, owner = obj.get("created"), obj.get("owned_by")
    return ModelCard(
        ident,
        created if type(created) is int else None,
        owner if isinstance(owner, str) else None,
    )


def cards_of(protocol: str, listing: Any) -> list[ModelCard]:
    """The models of ``protocol``'s model-list answer that the codec lists, each with
    what the list says of it."""
    ids = codec_for(protocol).model_ids(listing)
    entries = listing.get("models" if protocol == "gemini" else "data") if isinstance(listing, dict) else None
    found = {c.id: c for c in (card_of(protocol, e) for e in entries or ()) if c is not None}
    return [found.get(i) or ModelCard(i) for i in ids]


def openai_model(card: ModelCard) -> dict[str, Any]:
    return {"id": card.id, "object": "model", "created": card.created or 0, "owned_by": card.owned_by or "tollway"}


def gemini_model(card: ModelCard) -> dict[str, Any]:
    """The model as Gemini's list names it: its own entry, or one made from the card
    that lists no methods (a model of another protocol's provider, which Gemini's own
    API cannot call through the gateway)."""
    if card.gemini is not None:
        return dict(card.gemini)
    shown = card.display_name or card.id
    return {"name": f"models/{card.id}", "displayName": shown, "supportedGenerationMethods": []}


def anthropic_model(card: ModelCard) -> dict[str, Any]:
    # A time nobody said is the epoch; one past year 9999 (a provider's) its end.
    made = iso_instant(card.created or 0)
    return {"type": "model", "id": card.id, "display_name": card.display_name or card.id, "created_at": made}


__all__ = ["ModelCard", "anthropic_model", "card_of", "cards_of", "gemini_model", "openai_model"]
