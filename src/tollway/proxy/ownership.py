"""Files, batches, vector stores and containers belong to the consumer that created them
(SPEC §9).

A provider account holds every consumer's uploads and batches together; the gateway
keeps them apart with ``consumers.holdings``, and only the files and batches APIs (and
those collections) pay for it (one or two small queries a call):

    POST   /files                   the answer's id is recorded as the consumer's file
    POST   /batches                 its ``input_file_id`` must be the consumer's file;
                                    the answer's id is recorded as the consumer's batch
    GET    /files, /batches         the page lists only the consumer's own
    GET    /files/{id}[/content]    404 unless ``{id}`` is the consumer's
    DELETE /files/{id}
    GET    /batches/{id}            404 unless ``{id}`` is the consumer's; a batch's
    POST   /batches/{id}/cancel     ``output_file_id`` and ``error_file_id`` become the
                                    consumer's files as they appear
    POST   /uploads                 the answer's id is recorded as the consumer's upload
    POST   /uploads/{id}/parts      404 unless ``{id}`` is the consumer's upload; the
    POST   /uploads/{id}/complete   completed upload's ``file`` becomes the consumer's
    POST   /uploads/{id}/cancel
    POST   /messages/batches        Anthropic's message batches, as OpenAI's batches
    GET    /messages/batches[/{id}[/results]], POST …/{id}/cancel, DELETE …/{id}
    POST   /models/{m}:batchGenerateContent   Gemini's batches (``make_batch``): the
    GET    /batches[/{id}], POST /batches/{id}:cancel   operation's ``batches/{id}``
    POST   /vector_stores           the answer's id is recorded as the consumer's store;
    GET    /vector_stores           the page lists only the consumer's own;
    *      /vector_stores/{id}[/…]  404 if ``{id}`` is another consumer's (its search,
                                    files and file batches included)
    POST, GET, * /containers…       a code interpreter's containers and their files, as
                                    vector stores
    POST, GET, * /fine_tuning/jobs… fine-tuning jobs (their events, checkpoints, cancel,
                                    pause and resume), as vector stores

An object can be named in a body too, whatever the API: a file in a chat or Responses
content part (``file_id``), files given to a vector store or a code interpreter
(``file_ids``), vector stores to search (``vector_store_ids``: ``file_search`` tools,
``tool_resources``), a container to run in (``container``, ``container_id``), a Gemini
file (``files/{id}`` or its URI anywhere, in a call that may go to Google:
``google_name``). Any call
naming there an object another consumer holds is refused as its path would be (404),
before the provider is asked (``admit_named``); an id no consumer holds passes (a
tool's own argument may be called ``file_id``). Bodies that hold none of those names
cost a few scans of their bytes (``may_name``); the others are walked parsed, where an
escaped name (``file\\u005fid``) reads as any other.

Vector stores, containers and fine-tuning jobs came later than files: one that no consumer holds (made
before the gateway recorded them, or outside it) is still served to whoever names its
id, as a stored response is (``response_owners``), so a consumer's own from before an
upgrade stays usable; lists show only the consumer's own all the same.

A call with no consumer (a route without key-auth) sees what no consumer holds: objects
made without a key, or outside the gateway. A list page holds the consumer's own objects
from the provider's pages: while it has fewer than the client's ``limit`` and the
provider has more, the next provider page is asked for (``after`` its last object), up
to ``MAX_PAGES`` provider pages a call; ``has_more`` and ``last_id`` then let the client
go on from the last object it got. The database unreachable → 503
``ai-proxy.database_unavailable``, before the provider is called; a created object that
cannot be recorded is logged, and answered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_to_bytes, urlencode

import orjson

from tollway.consumers.holdings import Holdings, Kind
from tollway.errors import BadRequest, GatewayError, NotFound, UpstreamError
from tollway.exchange import Exchange, Reply
from tollway.protocols.apis import MESSAGE_BATCHES, Api
from tollway.protocols.form import form_fields
from tollway.storage import StorageError

log = logging.getLogger("tollway.ownership")

# The APIs whose objects belong to a consumer.
OWNED_APIS: frozenset[Api] = frozenset({"files", "batches"})
# Each collection (its path, without /v1): what it holds, and the query parameter that
# asks a list for the page after an object (Anthropic's ``after_id``, OpenAI's ``after``).
_COLLECTIONS: dict[str, tuple[Kind, str]] = {
    "/files": ("file", "after"),
    "/batches": ("batch", "after"),
    "/uploads": ("upload", "after"),
    MESSAGE_BATCHES: ("batch", "after_id"),
    "/vector_stores": ("vector_store", "after"),
    "/containers": ("container", "after"),
    "/fine_tuning/jobs": ("fine_tuning_job", "after"),
    # Gemini's (Google's list pages: the ``after`` field is never asked for).
    "/cachedcontents": ("cached_content", "pageToken"),
    "/filesearchstores": ("file_search_store", "pageToken"),
}
# Collections of calls of no metered API ("other") held here, in lower case.
_OTHER_COLLECTIONS = ("/vector_stores", "/containers", "/fine_tuning/jobs", "/cachedcontents", "/filesearchstores")
# Collections two segments deep (``/messages/batches``, ``/fine_tuning/jobs``), by their
# first segment in lower case.
_DEEP = frozenset({"messages", "fine_tuning"})
# Kinds whose objects no consumer holds are served to anyone naming them (see above).
_UNHELD_SERVED: frozenset[Kind] = frozenset(
    {"vector_store", "container", "fine_tuning_job", "cached_content", "file_search_store"}
)
# What Google's answer names an object it made (``cachedContents/{id}``), by kind.
_GOOGLE_NAMES: dict[Kind, str] = {"cached_content": "cachedContents/", "file_search_store": "fileSearchStores/"}
# What names a Gemini batch (``batches/{id}``): the operation that made it, its list.
_GEMINI_BATCH = "batches/"
# A batch's files that the provider makes as it runs.
_BATCH_FILES = ("output_file_id", "error_file_id")
# Provider pages one list call may read to fill the client's page.
MAX_PAGES = 10
# The providers' page sizes when the client names none (OpenAI's: files 10,000, batches 20).
_DEFAULT_LIMIT: dict[Kind, int] = {
    "file": 10_000, "upload": 20, "batch": 20, "vector_store": 20, "container": 20, "fine_tuning_job": 20,
    "cached_content": 20, "file_search_store": 20,
}  # fmt: skip
# Asks the provider once: the client's query string, or the one given.
Call = Callable[[str | None], Awaitable[Reply]]


def _not_found(kind: Kind, object_id: str) -> NotFound:
    return NotFound(f"No such {kind} object: {object_id}", reason="ai-proxy.not_owner", code=f"{kind}_not_found")


def _database_unavailable() -> GatewayError:
    return GatewayError(
        "the gateway cannot tell whose files and batches are whose: its database is unavailable; try again shortly",
        reason="ai-proxy.database_unavailable",
        status=503,
        code="service_unavailable",
        headers=[("retry-after", "1")],
    )


# The names under which a body names objects, by the kind they name (each a string, or
# a list of strings); and the raw bytes that say a body may hold one (a name escaped in
# JSON, ``file\u005fid``, shows a backslash-u).
_NAMED_IN_BODIES: dict[str, Kind] = {
    "file_id": "file",
    "file_ids": "file",
    "input_file_id": "file",
    # A fine-tuning job's files (``POST /fine_tuning/jobs``).
    "training_file": "file",
    "validation_file": "file",
    "vector_store_ids": "vector_store",
    "vector_store_id": "vector_store",
    "container": "container",
    "container_id": "container",
}
_MAY_NAME = (b"file_id", b"vector_store_id", b"container", b"training_file", b"validation_file")


def _may_name_google_file(raw: bytes) -> bool:
    """Whether a body may hold ``files/`` in any letter case or percent-encoding: one
    lowered copy of it and a scan (a ``%`` decoded first); a body with neither a ``/``
    nor a ``%`` (most chat calls') costs two ``memchr``."""
    if b"/" not in raw and b"%" not in raw:
        return False
    lowered = raw.lower()
    if b"files/" in lowered or b"files%2f" in lowered:
        return True
    return b"%" in raw and b"files/" in unquote_to_bytes(lowered).lower()


# Gemini's cached content to answer from (``cachedContent: "cachedContents/{id}"``) and
# file search stores to search (a ``fileSearch`` tool's ``fileSearchStoreNames``), by
# the collection that names them.
_URIS_IN_BODIES: dict[str, tuple[Kind, str]] = {
    "cachedContent": ("cached_content", "cachedcontents/"),
    "cached_content": ("cached_content", "cachedcontents/"),
    "fileSearchStoreNames": ("file_search_store", "filesearchstores/"),
    "file_search_store_names": ("file_search_store", "filesearchstores/"),
}
_GEMINI_NAMES = (b'"fileUri"', b'"file_uri"', *(b'"%s"' % name.encode() for name in _URIS_IN_BODIES))


def google_name(text: str, collection: str = "files/") -> str | None:
    """The id of the Google object ``text`` names in ``collection`` (lower case), or None.

    Gemini's uploaded files are named ``files/{id}`` (``https://…/v1beta/files/{id}`` as
    a URI): in a part's ``fileData.fileUri``, an import's ``fileName``, and, through a
    translation, any image or document URL an OpenAI or Anthropic client sends (which
    becomes a part's ``fileUri``). So any string without blanks that holds ``files/``
    names the file of its last path segment, however it is spelled (any letter case,
    percent-encoded, ``files//id``, ``files/x/../id``, a ``:download`` suffix, a
    query); an id no consumer holds passes. A cached content's name is read alike."""
    text = text.strip()
    if "%" in text:
        text = unquote(text)
    at = text.lower().rfind(collection)
    if at < 0 or any(c.isspace() for c in text):
        return None
    path = re.split(r"[?#]", text[at + len(collection) :], maxsplit=1)[0]
    segments = [s for s in path.split("/") if s not in ("", ".", "..")]
    return segments[-1].partition(":")[0] or None if segments else None


def may_name(ex: Exchange, google: bool = False) -> bool:
    """Whether a call's body may name an object (``Ownership.admit_named``): it holds
    one of the names, or an escape (``file\\u005fid``). A chat call names no vector
    store or container (no such tools there): on the busiest path, one scan of its bytes
    for ``file_id`` and one ``memchr`` for a backslash (most bodies have none)."""
    raw = ex.request.body
    if not raw:
        return False
    if b"\\" in raw and b"\\u" in raw:
        return True
    if google and _may_name_google_file(raw):
        return True  # (a Gemini file, by any API: a translated image URL becomes one)
    if google and any(name in raw for name in _GEMINI_NAMES):
        return True  # (Gemini's own methods: ``generateContent`` is a chat's)
    if ex.api == "chat":
        return b"file_id" in raw
    if b"%" in raw and "urlencoded" in (ex.request.headers.get("content-type") or ""):
        return True  # (a form's names may be percent-encoded: ``file%5Fid``)
    return any(mark in raw for mark in _MAY_NAME)


def names_kept(ex: Exchange, google: bool = False) -> bool:
    """Whether a call's body names an object its provider keeps per account: a file, a
    vector store or a container (``named_in``), or a Gemini cached content or file; its key is
    then the consumer's own (``ai_proxy._affinity``). A body without one costs the scans
    of ``may_name``."""
    if not may_name(ex, google):
        return False
    try:
        named = named_in(ex.body_json(), google)
    except GatewayError:
        named = named_in(_form_of(ex), google)
    # (A key of that name with no id under it, a tool's parameter in a JSON schema, names
    # nothing: such calls were pinned to one key, a red team found.)
    return any(named.values())


def named_in(body: Any, google: bool = False) -> dict[Kind, set[str]]:
    """The objects a parsed body names (see the module), by kind, at any depth; Gemini's
    (files, cached contents, file search stores) only for a call that may go to Google
    (``google``): to any other provider a URL ending ``/files/x`` names nothing of its
    own, and was refused or pinned to one key for another consumer's Gemini file (a red
    team's finding)."""
    named: dict[Kind, set[str]] = {}
    stack = [body]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                kind = _NAMED_IN_BODIES.get(key)
                if kind is not None:
                    named.setdefault(kind, set()).update(i for i in _strings(child) if i)
                elif google and key in _URIS_IN_BODIES:
                    uri_kind, collection = _URIS_IN_BODIES[key]
                    for uri in _strings(child):
                        _take(named, uri_kind, google_name(uri, collection))
                if isinstance(child, dict | list):
                    stack.append(child)
                elif google and isinstance(child, str):
                    _take_google_file(named, child)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict | list):
                    stack.append(item)
                elif google and isinstance(item, str):
                    _take_google_file(named, item)
    return named


def _strings(value: Any) -> list[str]:
    """A body's value as the names it may hold: a string, or a list's strings."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _take_google_file(named: dict[Kind, set[str]], text: str) -> None:
    if "%" in text or "files" in text.lower():
        _take(named, "file", google_name(text))


def _take(named: dict[Kind, set[str]], kind: Kind, object_id: str | None) -> None:
    """``object_id`` as named, and in lower case (Google's ids are; a client may not write them so)."""
    if object_id is not None:
        named.setdefault(kind, set()).update({object_id, object_id.lower()})


def _form_of(ex: Exchange) -> dict[str, Any]:
    """A form body's text fields that may name an object (multipart or urlencoded); {}
    for any other body, or one that cannot be read as a form."""
    body = ex.request.body or b""
    content_type = ex.request.headers.get("content-type") or ""
    try:
        if content_type.lower().startswith("multipart/"):
            fields = form_fields(content_type, body, frozenset(_NAMED_IN_BODIES), len(body)) or {}
            return {k: v.decode("utf-8", "replace") for k, v in fields.items()}
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    except (BadRequest, ValueError):
        return {}
    found: dict[str, list[str]] = {}
    for name, value in pairs:  # (every value of a repeated name: ``named_in`` reads lists)
        found.setdefault(name, []).append(value)
    return found


def _sees(owner: str | None, consumer: str | None) -> bool:
    return owner == consumer


def owned_here(api_path: str) -> bool:
    """Whether a call of no metered API (``other``) is on a collection held here (its
    first segment in any letter case, as a provider may match paths so)."""
    return _collection_of(api_path)[0] in _OTHER_COLLECTIONS


class Ownership:
    def __init__(self, holdings: Holdings) -> None:
        self.holdings = holdings

    async def serve(self, ex: Exchange, call: Call) -> Reply:
        """The provider's answer to a files or batches call (``call``), held to the
        consumer's own objects (see the module)."""
        collection, object_id = _collection_of(ex.api_path)
        # A path only like a collection's (``/filesx``) is held as its API's own.
        kind, after = _COLLECTIONS.get(collection) or _COLLECTIONS["/" + ex.api]
        consumer = ex.consumer.name if ex.consumer is not None else None
        method = ex.request.method
        try:
            if object_id is not None:
                await self._admit(kind, object_id, consumer)
            elif collection == "/batches" and method == "POST":
                input_file = _input_file_id(ex)
                if input_file is not None:
                    await self._admit("file", input_file, consumer)
            if object_id is None and method == "POST" and consumer is not None:
                # Making one: the database that will record it must answer first. Made
                # while it could not, it was no one's, and served to every consumer.
                await self.holdings.answers()
        except StorageError:
            raise _database_unavailable() from None
        if object_id is None and method == "GET":
            try:
                return await self._own_list(ex, kind, after, consumer, call)
            except StorageError:
                raise _database_unavailable() from None
        reply = await call(None)
        if reply.events is not None or not 200 <= reply.status < 300:
            return reply
        answer = _json_object(reply.body)
        if answer is not None and collection == MESSAGE_BATCHES and _results_here(ex, [answer]):
            reply = Reply(reply.status, reply.headers, orjson.dumps(answer))
        if answer is not None and consumer is not None:
            try:
                await self._record(kind, answer, consumer, created=object_id is None and method == "POST")
            except StorageError as exc:
                log.warning("could not record %s %r as consumer %r's: %s", kind, answer.get("id"), consumer, exc)
        return reply

    async def admit_named(self, ex: Exchange, google: bool = False) -> None:
        """Refuse a call whose body names an object another consumer holds (see the
        module); the database unreachable → 503, when the body names any. Asked only
        where ``may_name``; ``google``: the call may go to Google (``named_in``)."""
        try:
            named = named_in(ex.body_json(), google)
        except GatewayError:
            # Not JSON: a form's fields name objects as a JSON body's keys do (OpenAI
            # takes a container's file as multipart ``file_id``; a compatible server may
            # take any of them as a form).
            named = named_in(_form_of(ex), google)
        consumer = ex.consumer.name if ex.consumer is not None else None
        for kind, ids in named.items():
            if not ids:
                continue
            try:
                owners = await self.holdings.owners(kind, ids)
            except StorageError:
                raise _database_unavailable() from None
            for object_id in sorted(ids):
                owner = owners.get(object_id)
                if owner is not None and owner != consumer:
                    raise _not_found(kind, object_id)

    async def _admit(self, kind: Kind, object_id: str, consumer: str | None) -> None:
        owner = (await self.holdings.owners(kind, [object_id])).get(object_id)
        if not _sees(owner, consumer) and not (owner is None and kind in _UNHELD_SERVED):
            raise _not_found(kind, object_id)

    async def make_batch(self, ex: Exchange, call: Callable[[], Awaitable[Reply]]) -> Reply:
        """A Gemini batch made by a model's method (``:batchGenerateContent``): the
        operation the provider answers names it (``batches/{id}``), recorded as the
        consumer's batch, so that ``/batches/{id}`` serves it to its maker alone."""
        consumer = ex.consumer.name if ex.consumer is not None else None
        if consumer is not None:
            try:
                await self.holdings.answers()  # (made while it could not record it: no one's)
            except StorageError:
                raise _database_unavailable() from None
        reply = await call()
        made = _json_object(reply.body) if reply.events is None and 200 <= reply.status < 300 else None
        name = made.get("name") if made is not None else None
        if consumer is not None and isinstance(name, str) and name.startswith(_GEMINI_BATCH):
            try:
                await self.holdings.add("batch", [name[len(_GEMINI_BATCH) :]], consumer)
            except StorageError as exc:
                log.warning("could not record batch %r as consumer %r's: %s", name, consumer, exc)
        return reply

    async def _record(self, kind: Kind, answer: dict[str, Any], consumer: str, *, created: bool) -> None:
        if created and isinstance(answer.get("id"), str):
            await self.holdings.add(kind, [answer["id"]], consumer)
        if kind == "batch":
            await self._take_batch_files([answer], consumer)
        made = answer.get("file") if kind == "upload" else None
        if isinstance(made, dict) and isinstance(made.get("id"), str):
            # A completed upload is a file: the uploader's.
            await self.holdings.add("file", [made["id"]], consumer)
        made_name = answer.get("name") if created and kind in _GOOGLE_NAMES else None
        if isinstance(made_name, str) and made_name.startswith(_GOOGLE_NAMES[kind]):
            # Google's answer names what it made (``cachedContents/{id}``), without an id.
            await self.holdings.add(kind, [made_name[len(_GOOGLE_NAMES[kind]) :]], consumer)
        google = answer.get("file") if kind == "file" and created else None
        if isinstance(google, dict) and isinstance(google.get("name"), str) and google["name"].startswith("files/"):
            # Gemini's upload answers the file it made, named ``files/{id}``.
            await self.holdings.add("file", [google["name"][6:]], consumer)

    async def _take_batch_files(self, batches: list[dict[str, Any]], consumer: str) -> None:
        files = [b[key] for b in batches for key in _BATCH_FILES if isinstance(b.get(key), str) and b[key]]
        if files:
            await self.holdings.add("file", files, consumer)

    async def _own_list(self, ex: Exchange, kind: Kind, after: str, consumer: str | None, call: Call) -> Reply:
        """A list page of the consumer's own objects (see the module); ``first_id`` and
        ``last_id`` follow it where the provider's shape has them."""
        limit = _limit(ex, kind)
        own: list[dict[str, Any]] = []
        answer: dict[str, Any] = {}
        query: str | None = None
        scanned: str | None = None  # the provider's last object read
        for _ in range(MAX_PAGES):
            reply = await call(query)
            if reply.events is not None or not 200 <= reply.status < 300:
                return reply  # the provider's refusal, as it came
            parsed = _json_object(reply.body)
            data = parsed.get("data") if parsed is not None else None
            if parsed is not None and data is None and _google_page(parsed):
                return await self._own_google_page(reply, parsed, kind, consumer)
            if parsed is None or not isinstance(data, list):
                # A page the gateway cannot read is a page it cannot filter.
                raise UpstreamError(
                    f"the provider's {ex.api} list is not a JSON object with data",
                    reason="ai-proxy.bad_upstream_response",
                )
            answer = parsed
            items = [item for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
            owners = await self.holdings.owners(kind, [item["id"] for item in items])
            own.extend(item for item in items if _sees(owners.get(item["id"]), consumer))
            more = answer.get("has_more") is True
            if not items:
                break
            scanned = items[-1]["id"]
            if len(own) >= limit or not more:
                break
            query = _after(ex, after, scanned)
        page = own[:limit]
        _results_here(ex, page)
        if kind == "batch" and consumer is not None:
            await self._take_batch_files(page, consumer)
        more = more or len(own) > limit
        out = {**answer, "data": page, "has_more": more}
        if "first_id" in out:
            out["first_id"] = page[0]["id"] if page else None
        if "last_id" in out:
            # Where to go on from: the last object sent, or (none of the consumer's in
            # the pages read) the last one read.
            out["last_id"] = page[-1]["id"] if page else (scanned if more else None)
        return Reply(reply.status, reply.headers, orjson.dumps(out))

    async def _own_google_page(self, reply: Reply, page: dict[str, Any], kind: Kind, consumer: str | None) -> Reply:
        """A page of one of Google's lists (batches as long-running ``operations``,
        ``files``: each named ``batches/{id}``, ``files/{id}``; the next page by
        ``nextPageToken``; an empty list left out, ``{}``): the consumer's own of that one
        provider page (the next token goes on from the page read)."""
        out = dict(page)
        for field in _GOOGLE_LISTS:
            listed = page.get(field)
            if not isinstance(listed, list):
                continue
            items = [item for item in listed if isinstance(item, dict) and isinstance(item.get("name"), str)]
            ids = {item["name"]: item["name"].rpartition("/")[2] for item in items}
            owners = await self.holdings.owners(kind, ids.values())
            out[field] = [item for item in items if _sees(owners.get(ids[item["name"]]), consumer)]
        return Reply(reply.status, reply.headers, orjson.dumps(out))


# The lists of Google's list pages, by their field.
_GOOGLE_LISTS = ("operations", "files", "batches", "cachedContents", "fileSearchStores")


def _google_page(page: dict[str, Any]) -> bool:
    """Whether a list page is in Google's shape: its list under a field of
    ``_GOOGLE_LISTS`` and ``nextPageToken``, nothing else (Google leaves an empty list
    out: a page with none is ``{}``)."""
    return all(
        (key in _GOOGLE_LISTS and isinstance(value, list)) or (key == "nextPageToken" and isinstance(value, str))
        for key, value in page.items()
    )


def _limit(ex: Exchange, kind: Kind) -> int:
    raw = ex.request.query_param("limit")
    try:
        limit = int(raw) if raw is not None else _DEFAULT_LIMIT[kind]
    except ValueError:
        limit = _DEFAULT_LIMIT[kind]
    return max(limit, 1)


def _results_here(ex: Exchange, batches: list[dict[str, Any]]) -> bool:
    """Point each message batch's ``results_url`` (the provider's own address, where the
    client's key is no key and no owner is checked) at this gateway, under the path the
    client called; True if one changed. TLS ends in front of the gateway, which says
    its scheme in ``X-Forwarded-Proto``."""
    path = ex.request.path
    base = path[: path.lower().find(MESSAGE_BATCHES)]
    scheme = (ex.request.headers.get("x-forwarded-proto") or "http").split(",")[0].strip()
    host = ex.request.headers.get("host") or ex.request.host  # with its port
    changed = False
    for batch in batches:
        if isinstance(batch.get("results_url"), str) and isinstance(batch.get("id"), str):
            batch["results_url"] = f"{scheme}://{host}{base}{MESSAGE_BATCHES}/{batch['id']}/results"
            changed = True
    return changed


def _collection_of(api_path: str) -> tuple[str, str | None]:
    """The collection a files or batches path is in, and the object it names (None: the
    collection itself)."""
    segments = api_path.strip("/").split("/")
    depth = 2 if segments[0].lower() in _DEEP else 1
    collection = "/" + "/".join(segments[:depth]).lower()
    # (Google's custom methods follow the id: ``/batches/{id}:cancel``.)
    return collection, (segments[depth].partition(":")[0] if len(segments) > depth else None)


def _after(ex: Exchange, after: str, object_id: str) -> str:
    """The client's query (credentials left out) asking for the page after ``object_id``."""
    params = [(k, v) for k, v in parse_qsl(ex.upstream_query(), keep_blank_values=True) if k != after]
    return urlencode([*params, (after, object_id)])


def _input_file_id(ex: Exchange) -> str | None:
    try:
        body = ex.request.json()
    except BadRequest:
        return None  # the provider refuses what is not JSON; nothing runs from it
    file_id = body.get("input_file_id") if isinstance(body, dict) else None
    return file_id if isinstance(file_id, str) else None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        answer = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None
