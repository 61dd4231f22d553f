"""The models an Anthropic Message Batch asks for (``POST /v1/messages/batches``).

Each of its ``requests`` is ``{custom_id, params}`` with ``params`` a Messages request
of its own: every ``params.model`` is held to ``allow_models`` (SPEC §9), and the first
one routes the batch and is recorded as the call's model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def message_batch_models(body: Any) -> Iterator[tuple[int, str]]:
    """(index, model) of each request in the batch that names a model."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list):
        return
    for i, item in enumerate(requests):
        params = item.get("params") if isinstance(item, dict) else None
        model = params.get("model") if isinstance(params, dict) else None
        if isinstance(model, str) and model:
            yield i, model
