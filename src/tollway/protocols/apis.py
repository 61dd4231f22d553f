"""The APIs a client can call, and the dialect it speaks: the one place that names them.

The gateway works out both from the request path when a call starts (``api_path_of``,
``api_of``, ``dialect_of``) and keeps them on the exchange; providers, the proxy, the
plugins and the masking rules read them from there. Paths are relative to the API root
(``/v1`` left out), as providers' base URLs end in it.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

# The API paths (after /v1) whose bodies the gateway reads.
CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"
MESSAGES = "/messages"
MODELS = "/models"
RESPONSES = "/responses"
COUNT_TOKENS = "/messages/count_tokens"
MESSAGE_BATCHES = "/messages/batches"
MODERATIONS = "/moderations"

# What the record and the plugins call each API; anything else is "other".
Api = Literal[
    "chat", "completions", "embeddings", "messages", "count_tokens", "responses", "models",
    "moderations", "images", "audio", "files", "batches", "mcp", "other",
]  # fmt: skip
_BY_PATH: dict[str, Api] = {
    CHAT: "chat",
    COMPLETIONS: "completions",
    EMBEDDINGS: "embeddings",
    MESSAGES: "messages",
    COUNT_TOKENS: "count_tokens",
    RESPONSES: "responses",
    MODELS: "models",
    MODERATIONS: "moderations",
}
# APIs named by their first path segment (``/images/generations``, ``/files/{id}``,
# ``/models/{id}``: one model's details).
_BY_PREFIX: dict[str, Api] = {
    "/images/": "images",
    "/audio/": "audio",
    "/files": "files",
    "/batches": "batches",
    # OpenAI's Uploads API makes a file from parts; Anthropic's Message Batches.
    "/uploads": "files",
    MESSAGE_BATCHES: "batches",
    "/models/": "models",
}
# APIs whose JSON body the gateway parses and validates as a model request (and whose
# ``model`` the provider's ``modelMapping`` rewrites).
JSON_APIS: frozenset[Api] = frozenset({"chat", "completions", "embeddings", "messages", "count_tokens", "responses"})
# APIs whose requests may be forms (``multipart/form-data``) naming their model in a field.
FORM_APIS: frozenset[Api] = frozenset({"audio", "images"})
# APIs that carry prompt text in an OpenAI- or Anthropic-shaped body.
PROMPT_APIS: frozenset[Api] = JSON_APIS | {"count_tokens", "responses"}
# The Responses API's token count: a responses body, answered with a count.
RESPONSES_INPUT_TOKENS = "/responses/input_tokens"
# The Responses API's compaction of a conversation: a responses body, billed as one.
RESPONSES_COMPACT = "/responses/compact"
# Google's own Gemini API, ``…/models/<model>:<method>`` (``/v1beta/models/…``, Vertex
# AI's ``…/publishers/google/models/…``), and the methods whose body carries prompt text
# (``contents``, ``systemInstruction``, tools), in lower case (``gemini_method``).
_GEMINI_METHOD = re.compile(r"models/[^/:]+:([a-z]+)/?\Z")
# The same in any letter case, a tuned model's ``…/tunedModels/<model>:…`` too: what
# precedes the model, the model, and ``:<method>`` (``gateway.facts`` reads the model
# off it, ``with_path_model`` puts the provider's in its place).
PATH_MODEL = re.compile(r"(/(?:tuned)?models/)([^/:]+)(:[A-Za-z]+)$", re.IGNORECASE)
GEMINI_PROMPT_METHODS = frozenset(
    {"generatecontent", "streamgeneratecontent", "counttokens", "embedcontent", "batchembedcontents"}
)

# Google's own APIs under a pre-release version root (its model list and details, as
# Google's SDK asks, files, batches, cached contents: ``/v1beta/batches/…``), not its
# OpenAI layer (``/v1beta/openai/…``): answered in Google's shape.
_GOOGLE_ROOT = re.compile(r"/v\d+(?:alpha|beta)\d*/(?!openai(?:/|\Z))[a-z]")
# The shape a client speaks: its errors, refusals and stream endings answer in kind.
Dialect = Literal["openai", "anthropic", "gemini"]


# Google's own API roots its paths at a version of its own (``/v1beta/models/…``, as its
# SDK calls it): the API path is what follows, as after ``/v1``, and the provider puts
# its configured version back once (without this a Gemini provider sent
# ``/v1beta/v1beta/models/…``).
_VERSION_ROOT = re.compile(r"/v\d+(?:alpha|beta)\d*/", re.IGNORECASE)
# The root of an OpenAI compatibility layer under an API version (Gemini's
# ``https://generativelanguage.googleapis.com/v1beta/openai/``).
_OPENAI_LAYER = "/openai/"


def api_path_of(path: str) -> str:
    """The client's path from ``/v1/`` on, without ``/v1``: ``/chat/completions`` (or from
    a pre-release version's root such as ``/v1beta/``, without it). A path with neither is
    its own API path. A path naming one of the APIs above in other
    letter case (``/V1/Chat/Completions``) is that API's path: some servers match paths
    without regard to case, and a call that reaches a model must not escape the plugins
    that govern its API (masking, request-block) by its spelling."""
    i = path.find("/v1/")
    if i < 0:
        i = path.lower().find("/v1/")
    if i >= 0:
        api_path = path[i + 3 :]
    else:
        root = _VERSION_ROOT.search(path)
        api_path = path[root.end() - 1 :] if root is not None else path
    if api_path[:8].lower() == _OPENAI_LAYER:
        # Google's OpenAI compatibility layer (``/v1beta/openai/chat/completions``): the
        # API below it, when it is one the gateway knows, is that API to every plugin and
        # the record (as a pass-through, no mask, token count or token limit saw it).
        below = api_path[7:]
        if below.lower() in _BY_PATH or api_of(below) != "other":
            api_path = below
    if api_path in _BY_PATH:
        return api_path
    lowered = api_path.lower()
    return lowered if lowered in _BY_PATH else api_path


# Google's media uploads go to its upload root (``/upload/v1beta/files``): what a provider
# is asked at keeps it (``upstream_path``), where the API path, to plugins and records, is
# the files API's.
UPLOAD_ROOT = "/upload"
_UPLOADED = re.compile(r"/upload/v\d+(?:(?:alpha|beta)\d*)?/", re.IGNORECASE)  # (/upload/v1/: Google's SDK's)


def upstream_path(path: str, api_path: str) -> str:
    """The path a provider is asked at for ``api_path``: it, or under ``UPLOAD_ROOT``
    where the client asked at Google's upload root (a Gemini provider puts its version
    between the two)."""
    if "/upload/" in path.lower() and _UPLOADED.search(path) is not None:
        return UPLOAD_ROOT + api_path
    return api_path


def api_of(api_path: str) -> Api:
    api = _BY_PATH.get(api_path)
    if api is not None:
        return api
    lowered = api_path.lower()  # IDs after the prefix keep their case; the prefix does not
    for prefix, name in _BY_PREFIX.items():
        if lowered.startswith(prefix):
            return name
    return "other"


def carries_prompt(api: Api, api_path: str) -> bool:
    """Whether ai-data-masking reads a call's JSON body as text a model reads. It fails
    closed: every API does but those that keep what they are sent and hand it back in
    later calls (``_STATEFUL``, files and uploads, batches: masked text would come back
    to a later call as placeholders it cannot restore) and MCP's tool calls (read by
    tools, not a model). So the images API's prompt, speech's input, a vector store
    search's query, Gemini's other methods (Imagen's ``:predict``) and every path the
    gateway does not know (``/chat/completions/x``, which a provider may serve all the
    same) are read."""
    if api in PROMPT_APIS or api == "moderations":
        return True
    if api in _NOT_READ:
        return False
    method = gemini_method(api_path)
    if method is not None:
        return method not in _GEMINI_BATCH_METHODS
    lowered = api_path.lower()
    return _STATEFUL.match(lowered) is None or _VECTOR_STORE_SEARCH.match(lowered) is not None


# APIs whose bodies ai-data-masking leaves to ``deny_raw`` (``carries_prompt``).
_NOT_READ: frozenset[Api] = frozenset({"files", "batches", "mcp"})
# Stateful APIs: OpenAI's assistants, threads and runs, conversations and their items,
# vector stores and their files, fine-tuning jobs, evals, containers and realtime
# sessions; skills (their uploaded files); Gemini's cached contents, tuned models,
# corpora and file search stores.
_STATEFUL = re.compile(
    r"/(?:assistants|threads|conversations|vector_stores|fine_tuning|evals|containers|realtime|chatkit|skills"
    r"|cachedcontents|tunedmodels|corpora|filesearchstores)(?:/|\Z)"
)
# A vector store search: a query, answered at once, kept nowhere.
_VECTOR_STORE_SEARCH = re.compile(r"/vector_stores/[^/]+/search/?\Z")
# Gemini's batch methods: the requests are kept and answered later, as OpenAI's batches.
_GEMINI_BATCH_METHODS = frozenset({"batchgeneratecontent", "asyncbatchembedcontent"})


# Calls past ``POST /responses`` (a read of one, its input items, a cancel); OpenAI's
# videos (made, then read, downloaded, remixed by id), which masking reads. (Stored chat
# completions are ``ai_proxy._stored_completions``.)
_STORED_READS = ("/responses/", "/videos")


def keeps_state(api: Api, api_path: str) -> bool:
    """Whether a call makes or uses an object its provider keeps in the account of the key
    it was made with (a file, a batch, a stored response, a vector store, …): such calls
    all go with one key (``Provider.pick_token``'s affinity), since another key, of
    another account or project, answers 404 for it. Of the methods of Gemini's own API,
    its batches (``:batchGenerateContent``) make one; a call naming one in its body (a
    file, a cached content) is ``names_kept``'s."""
    if api == "files" or api == "batches" or api == "responses":
        return True
    if api == "models":
        return makes_batch(api_path)
    if api != "other":
        return False
    lowered = api_path.lower()
    return lowered.startswith(_STORED_READS) or _STATEFUL.match(lowered) is not None


def makes_batch(api_path: str) -> bool:
    """Whether a call on Gemini's own API makes a batch (``…:batchGenerateContent``,
    ``…:asyncBatchEmbedContent``): one its consumer holds, as an OpenAI batch."""
    return gemini_method(api_path) in _GEMINI_BATCH_METHODS


def gemini_method(api_path: str) -> str | None:
    """The method of a call on Gemini's own API (``…/models/<model>:<method>``), in lower
    case; None for any other path."""
    found = _GEMINI_METHOD.search(api_path.lower())
    return found[1] if found is not None else None


# What a call on a method of Gemini's own API is recorded as (``recorded_api``): what
# the method does, in the names the other APIs' calls are recorded by. (To the gateway
# it stays a call under ``/models/``: its body is Gemini's, not a chat request's.)
_GEMINI_RECORDED: dict[str, Api] = {
    "generatecontent": "chat",
    "streamgeneratecontent": "chat",
    "counttokens": "count_tokens",
    "embedcontent": "embeddings",
    "batchembedcontents": "embeddings",
    "batchgeneratecontent": "batches",
    "asyncbatchembedcontent": "batches",
}


def recorded_api(api: Api, api_path: str) -> Api:
    """The API a call's usage record names: ``api``, but for a method of Gemini's own API
    (``…/models/<model>:generateContent``), which is its method's kind (``chat``,
    ``count_tokens``, ``embeddings``, ``batches``; ``other`` for the rest, such as
    Imagen's ``:predict``) rather than the model list's ``models``; and for the Responses
    API's calls past ``POST /responses`` (a read of one, its compaction: ``responses``;
    its token count, ``count_tokens``), which the gateway serves as ``other``."""
    if api == "other":
        if api_path[:11].lower() != "/responses/":
            return api
        return "count_tokens" if api_path.lower().rstrip("/") == RESPONSES_INPUT_TOKENS else "responses"
    if api != "models" or ":" not in api_path:
        return api
    method = gemini_method(api_path)
    return api if method is None else _GEMINI_RECORDED.get(method, "other")


def with_path_model(api_path: str, model: str) -> str:
    """``api_path`` naming ``model`` (percent-encoded as a path segment) in place of the
    model it names (``PATH_MODEL``)."""
    segment = quote(model, safe="")
    return PATH_MODEL.sub(lambda m: f"{m[1]}{segment}{m[3]}", api_path, count=1)


def dialect_of(path: str) -> Dialect:
    """Anthropic's for its Messages API (``/messages``, ``/messages/count_tokens``,
    ``/messages/batches…``); Google's for a method of Gemini's own API
    (``…/models/<model>:generateContent``) and whatever is under Google's pre-release
    version root (``/v1beta/models``, ``/v1beta/batches/…``); OpenAI's otherwise."""
    lowered = path.lower()
    if lowered.endswith(("/messages", COUNT_TOKENS)) or MESSAGE_BATCHES in lowered:
        return "anthropic"
    if (":" in lowered and _GEMINI_METHOD.search(lowered) is not None) or (
        "beta/" in lowered and _GOOGLE_ROOT.search(lowered) is not None
    ):
        return "gemini"
    return "openai"
