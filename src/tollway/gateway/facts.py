"""The request's facts, established once by the gateway so that no plugin works them
out again: from the path when a call starts, from the body once it is in.

    from_path(ex)   api_path, upstream_api_path,   before any plugin runs (on the
                    api, dialect                   canonical path: gateway.target)
    from_body(ex)   model_requested, stream        before the request-body phase
                    (a JSON body's, or a form's ``model`` field: ``protocols.form``;
                    or the path's, for a Gemini-style ``models/<m>:verb`` call; or
                    a message batch's first request's: ``protocols.batches``)

The body is parsed here, once; ``Request.json`` keeps the result for every plugin that
reads it. A body that cannot serve its API (not JSON, not an object, no model where one
is needed) is not refused here: the plugins still run in their order, and may refuse
the call for their own reasons first. ``from_body`` returns the 400 that the gateway
answers before the call would reach a provider. Refused at once, whatever the API: JSON
with a duplicate key or nested too deep (``AmbiguousJson``), and a model name with
control characters: no plugin, counter or record should take either as it stands.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from tollway.errors import BadRequest
from tollway.exchange import AmbiguousJson, Exchange, Request
from tollway.protocols.apis import (
    FORM_APIS,
    JSON_APIS,
    MESSAGE_BATCHES,
    PATH_MODEL,
    Dialect,
    api_of,
    api_path_of,
    dialect_of,
    gemini_method,
    upstream_path,
)
from tollway.protocols.batches import message_batch_models
from tollway.protocols.form import model_field

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1 (U+0080-U+009F: NEL, CSI, …)


def from_path(ex: Exchange) -> None:
    req = ex.request
    path = req.path
    ex.api_path = api_path_of(path)
    encoded = req.encoded_path
    if encoded is path:  # nothing was encoded: most calls
        ex.upstream_api_path = ex.api_path
    else:
        # "/v1/" is encoded as it stands and no "/" comes from an escape, so the API
        # path starts at the same segment in both.
        ex.upstream_api_path = api_path_of(encoded if encoded is not None else quote(path, safe="/:@"))
    if "pload/" in path:  # (Google's upload root: rare, and one substring test for the rest)
        ex.upstream_api_path = upstream_path(path, ex.upstream_api_path)
    ex.api = api_of(ex.api_path)
    ex.dialect = client_dialect(req)


# Headers only Google's clients send: its SDKs' ``x-goog-api-client``, Gemini's key header.
_GOOGLE_CLIENT = ("x-goog-api-client", "x-goog-api-key")
# The APIs whose paths Google's and OpenAI's share (``/v1/files``, ``/v1/models``):
# the others (``/v1/chat/completions``) name OpenAI's protocol, whoever asks.
_SHARED_PATHS = frozenset({"files", "batches", "models", "other"})


def client_dialect(req: Request) -> Dialect:
    """The protocol the client speaks, which its errors are answered in: the path's
    (``dialect_of``), or Google's for a Google client on a path Google's API has too
    (Google's SDK given a base URL asks for ``/v1/files``: an OpenAI-shaped error had no
    ``status``, so the SDK's ``ClientError`` said ``401 None``)."""
    dialect = dialect_of(req.path)
    if (
        dialect == "openai"
        and any(h in req.headers for h in _GOOGLE_CLIENT)
        and api_of(api_path_of(req.path)) in _SHARED_PATHS
    ):
        return "gemini"
    return dialect


def from_body(ex: Exchange) -> BadRequest | None:
    """Read the model and the stream flag off a JSON body (any API's: limits and
    ``allow_models`` apply to every call that names a model). Returns the reason the
    body cannot serve a model API, or ``None``; raises ``BadRequest`` for a model name
    with control characters, or that is a dot segment."""
    req = ex.request
    # A model named in the path, as Gemini's own API names it (``/v1beta/models/<model>:
    # generateContent``, ``…:streamGenerateContent``, ``…:countTokens``; Vertex AI's
    # ``…/publishers/google/models/<model>:…`` too; ``PATH_MODEL``): held to
    # ``allow_models`` and the limits like a body's, or a consumer allowed one model
    # could call any other this way. (Such a path reads as the models API by its first
    # segment; a POST there is never a model list's read.)
    if (ex.api == "other" or ex.api == "models") and req.method == "POST":
        in_path = PATH_MODEL.search(ex.api_path)
        if in_path is not None:
            _take_model(ex, in_path[2])
            ex.model_in_path = True
            # Gemini names a stream by its method, not by a body field.
            ex.stream = gemini_method(ex.api_path) == "streamgeneratecontent"
        elif _MODEL_AND_MORE.search(ex.api_path) is not None:
            # A model segment with a colon that is no ``<model>:<method>``
            # (``gemini-2.5-pro:generateContent:x``): no model could be read off it to
            # hold to allow_models, the limits and a budget, so it goes nowhere.
            raise BadRequest(
                "the path names a model and a method the gateway cannot read (…/models/<model>:<method>)",
                reason="gateway.bad_request",
            )
    if ex.api in FORM_APIS or ex.api == "other":
        # (A form of another API names its model in the same field: Sora's videos.)
        content_type = req.headers.get("content-type") or ""
        if req.method == "POST" and content_type.startswith("multipart/"):
            _take_model(ex, model_field(content_type, req.body or b""))
            return None
    model_api = req.method == "POST" and ex.api in JSON_APIS
    if not req.body and not model_api:
        return None
    try:
        body = req.json()
    except AmbiguousJson:
        raise
    except BadRequest as exc:
        return exc if model_api else None
    if not isinstance(body, dict):
        return BadRequest("request body must be a JSON object", reason="gateway.bad_request") if model_api else None
    if ex.model_in_path:
        # Gemini's own API: the provider runs the model its path names, and streams by
        # the method, whatever a body says (embedContent's documented body names a model
        # too): the body's must not be what the allow-list, the limits, the record and
        # the price see (a client named an allowed, cheap model there and was served the
        # path's).
        return None
    ex.stream = ex.stream or body.get("stream") is True
    model = body.get("model")
    if model is None and ex.api_path == MESSAGE_BATCHES and req.method == "POST":
        # A message batch's requests each name theirs: the first routes and is recorded.
        model = next((m for _, m in message_batch_models(body)), None)
    if model is None and not model_api:
        model = _nested_model(body)
    if isinstance(model, str) and model:
        _take_model(ex, model)
    elif model_api:
        return BadRequest("you must provide a model parameter", reason="gateway.bad_request")
    return None


# Where APIs without a top-level ``model`` name the one they run: a realtime session's
# (``/realtime/client_secrets`` mints a key the client then spends with directly), a
# transcription session's, an eval run's data source.
_NESTED_MODELS = (("session", "model"), ("input_audio_transcription", "model"), ("data_source", "model"))


def _nested_model(body: dict[str, Any]) -> Any:
    for outer, inner in _NESTED_MODELS:
        holder = body.get(outer)
        if isinstance(holder, dict) and holder.get(inner) is not None:
            return holder[inner]
    return None


# A model segment holding a colon: a ``<model>:<method>`` when ``PATH_MODEL`` reads it.
_MODEL_AND_MORE = re.compile(r"/(?:tuned)?models/[^/]*:", re.IGNORECASE)


def _take_model(ex: Exchange, model: str | None) -> None:
    if model:
        ex.model_requested = model
        if _CONTROL.search(model) is not None:
            raise BadRequest("the model name has control characters", reason="gateway.bad_request")
        if model == "." or model == "..":
            # A provider that puts the model in its URL's path (Azure's deployments)
            # would send the organisation's key to the path it resolves to.
            raise BadRequest(f"{model!r} is no model name", reason="gateway.bad_request")
