"""``GET /openapi.json``: the admin API described as an OpenAPI 3.1 document (SPEC §13).

The document is written here, next to the routes, and held to them by the suite: every
route the admin app serves is in it and nothing else is (``tests/system/test_openapi.py``
compares it with the app's own routing table), real answers validate against its
schemas, and schemathesis drives the running API from it. ``docs/admin-api.md`` is
generated from it (``scripts/admin_api_reference.py``).

It is served under the admin token like the data it describes; ``/healthz``,
``/readyz`` and the dashboard's files stay public.
"""

from __future__ import annotations

from typing import Any

from tollway.admin.app import AdminApp, AdminRequest, Answer, json_reply
from tollway.admin.consumers import MAX_GRACE_S
from tollway.consumers.consumer import MAX_BUDGET_USD, PERIODS
from tollway.consumers.store import MAX_ITEM, NAME_PATTERN
from tollway.usage.query import GROUPINGS, MAX_LIMIT

PATH = "/openapi.json"

_JSON = "application/json"
_NULLABLE_STRING = {"type": ["string", "null"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_TOKENS = {"type": "integer", "minimum": 0}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("Error"))


def _text(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _unauthorized(description: str) -> dict[str, Any]:
    header = {"required": True, "schema": {"type": "string", "const": "Bearer"}}
    return {**_error(description), "headers": {"WWW-Authenticate": header}}


_UNAUTHORIZED = _unauthorized("No admin token, or the wrong one (`WWW-Authenticate: Bearer`).")
_UNAVAILABLE = _error("The database did not answer; nothing was changed. Retry.")
_BAD_NAME = _error("The name in the path has control characters: no consumer or group is named so.")

_WINDOW = [
    {
        "name": name,
        "in": "query",
        "required": False,
        "description": f"{what}: a duration ago (`24h`, `7d`, `30m`, `90s`, `2w`) or an ISO-8601 date or "
        "date-time (UTC unless it names an offset).",
        "schema": {
            "anyOf": [
                # Up to 99999 units ago: further back than the year 1 is out of range.
                {"type": "string", "pattern": "^[0-9]{1,5}[smhdw]$"},
                {"type": "string", "format": "date"},
                {"type": "string", "format": "date-time"},
            ]
        },
    }
    for name, what in (("since", "Records at or after"), ("until", "Records before"))
]
_CONSUMER_FILTER = {
    "name": "consumer",
    "in": "query",
    "required": False,
    "description": "Only this consumer's records.",
    "schema": {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]*$"},
}
# An allow_models pattern or a group name: 1 to MAX_ITEM printable characters, any
# script (``str.isprintable``, as the store checks). A JSON Schema pattern cannot name
# Unicode categories portably, so it refuses what is not printable in every Unicode
# version (the C0 and C1 controls, DEL, the no-break space and the soft hyphen) and the
# description names the rest, which the API refuses with a 400.
_ITEM_PATTERN = f"^[^\\x00-\\x1f\\x7f-\\xa0\\xad]{{1,{MAX_ITEM}}}$"
_ITEMS = {"type": ["array", "null"], "items": {"type": "string", "pattern": _ITEM_PATTERN}}
_PRINTABLE = (
    f"Each of 1 to {MAX_ITEM} printable characters, any script (`模型-*`): a control character or another "
    "non-printing one (a line separator, a format character such as a zero-width space, a space other "
    "than U+0020, an unassigned code point) is a 400."
)

# What a new consumer may set and an edit may change.
_EDITABLE: dict[str, Any] = {
    "allow_models": {**_ITEMS, "description": f"Model patterns; a ~regex must compile (a 400 otherwise). {_PRINTABLE}"},
    "groups": {**_ITEMS, "uniqueItems": True, "description": f"Each group once (a 400 otherwise). {_PRINTABLE}"},
    "expires_at": {
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}, {"type": "null"}],
        "description": "ISO-8601, UTC unless it names an offset; null: never.",
    },
    "budget": {"anyOf": [_ref("Budget"), {"type": "null"}]},
    "max_parallel": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000},
    "metadata": {"type": ["object", "null"]},
    "allow_tools": {
        "type": ["object", "null"],
        "additionalProperties": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200}},
        "description": "MCP tool patterns per MCP server of the config (another name is a 400); a server without "
        "an entry, or null: all its tools. A ~regex must compile (a 400 otherwise).",
    },
}
_TOOLS = {"type": ["object", "null"], "additionalProperties": _STRINGS}
# A consumer's or group's name: no control characters (a path with them is a 400).
_NAME_PARAMETER = [
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]*$"}}
]
_SPEND = {"type": "array", "items": {"type": "object"}}
_CONFIG_CONSUMER = _error("The consumer comes from the config file; change it there.")

_SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {"message": {"type": "string"}, "type": {"type": "string", "const": "admin_error"}},
            )
        }
    ),
    "Readiness": _object(
        {
            "ready": {"type": "boolean"},
            "checks": {
                "type": "object",
                "description": "Each check (`config`, `database`, `state`) and `ok` or the reason it failed.",
                "additionalProperties": {"type": "string"},
            },
        }
    ),
    "Reloaded": _object(
        {
            "status": {"type": "string", "const": "reloaded"},
            "restart_needed": {**_STRINGS, "description": "Changed sections that take a restart to apply."},
        }
    ),
    "ReloadRejected": _object(
        {"status": {"type": "string", "const": "rejected"}, "errors": _STRINGS},
    ),
    "Consumer": _object(
        {
            "name": {"type": "string"},
            "allow_models": {"type": ["array", "null"], "items": {"type": "string"}},
            "groups": _STRINGS,
            "source": {"type": "string", "enum": ["config", "runtime"]},
            "key_hint": {
                "type": "string",
                "maxLength": 4,
                "description": "The key's last 4 characters, never the key; empty for a key under 16 characters.",
            },
            "created_at": _NULLABLE_STRING,
            "expires_at": {**_NULLABLE_STRING, "description": "After it the key is refused (ISO-8601 UTC)."},
            "budget": {"anyOf": [_ref("Budget"), {"type": "null"}]},
            "max_parallel": {"type": ["integer", "null"]},
            "allow_tools": {**_TOOLS, "description": "MCP tool patterns per MCP server; null: every tool."},
            "spend": {
                **_SPEND,
                "description": "Only with `spend=true`: as `GET /api/consumers/{name}` has it, one entry per "
                "budget that applies (the consumer's and its groups'); empty for none.",
            },
        },
        required=[
            "name",
            "allow_models",
            "groups",
            "source",
            "key_hint",
            "created_at",
            "expires_at",
            "budget",
            "max_parallel",
            "allow_tools",
        ],
    ),
    "ConsumerDetail": _object(
        {
            "name": {"type": "string"},
            "allow_models": {"type": ["array", "null"], "items": {"type": "string"}},
            "groups": _STRINGS,
            "source": {"type": "string", "enum": ["config", "runtime"]},
            "key_hint": {"type": "string", "maxLength": 4},
            "created_at": _NULLABLE_STRING,
            "expires_at": _NULLABLE_STRING,
            "budget": {"anyOf": [_ref("Budget"), {"type": "null"}]},
            "max_parallel": {"type": ["integer", "null"]},
            "allow_tools": _TOOLS,
            "metadata": {"type": ["object", "null"]},
            "spend": {**_SPEND, "description": "One entry per budget that applies (the consumer's and its groups')."},
        }
    ),
    "Budget": _object(
        {
            "usd": {"type": "number", "minimum": 0, "maximum": MAX_BUDGET_USD},
            "period": {"type": "string", "enum": list(PERIODS), "default": "month"},
        },
        required=["usd"],
    ),
    "NewConsumer": _object(
        {
            "name": {"type": "string", "pattern": f"^{NAME_PATTERN}$"},
            **_EDITABLE,
        },
        required=["name"],
    ),
    "ConsumerEdit": _object(dict(_EDITABLE), required=[]),
    "Rotation": _object(
        {"grace_s": {"type": "number", "minimum": 0, "maximum": MAX_GRACE_S, "default": 0}},
        required=[],
    ),
    "RotatedKey": _object(
        {"name": {"type": "string"}, "key": {"type": "string", "description": "Shown this once; stored hashed."}}
    ),
    "CreatedConsumer": _object(
        {
            "name": {"type": "string"},
            "key": {"type": "string", "description": "Shown this once; stored hashed."},
            "allow_models": {"type": ["array", "null"], "items": {"type": "string"}},
            "groups": _STRINGS,
            "allow_tools": _TOOLS,
        }
    ),
    "AuditEvent": _object(
        {
            "ts": {"type": "string", "description": "When, ISO-8601 UTC to the millisecond."},
            "action": {
                "type": "string",
                "description": "consumers.add, consumers.edit, consumers.rotate, consumers.revoke, config.reload, "
                "quota.refresh, quota.delta, …",
            },
            "subject": {**_NULLABLE_STRING, "description": "What was changed: a consumer's name, …"},
            "details": {"type": ["object", "null"], "description": "What was asked for; never a key."},
            "client_ip": _NULLABLE_STRING,
        }
    ),
    "Group": _object(
        {
            "name": {"type": "string"},
            "source": {"type": "string", "enum": ["config", "runtime"]},
            "budget": {"anyOf": [_ref("Budget"), {"type": "null"}]},
            "max_parallel": {"type": ["integer", "null"]},
            "members": {**_STRINGS, "description": "The consumers (config and runtime) that name the group."},
            "spend": {
                "type": "array",
                "description": "The group's budget's current period, if it has a budget.",
                "items": {"type": "object"},
            },
        }
    ),
    "NewGroup": _object(
        {
            "name": {"type": "string", "pattern": f"^{NAME_PATTERN}$"},
            "budget": _EDITABLE["budget"],
            "max_parallel": _EDITABLE["max_parallel"],
        },
        required=["name"],
    ),
    "GroupEdit": _object(
        {"budget": _EDITABLE["budget"], "max_parallel": _EDITABLE["max_parallel"]},
        required=[],
    ),
    "UsageRow": _object(
        {
            "key": {**_NULLABLE_STRING, "description": "The group's value; null for calls without one."},
            "requests": _TOKENS,
            "errors": _TOKENS,
            "input_tokens": _TOKENS,
            "output_tokens": _TOKENS,
            "cached_tokens": {**_TOKENS, "description": "The cached part of the input tokens."},
            "cache_write_tokens": {
                **_TOKENS,
                "description": "The part of the input tokens written to the provider's prompt cache.",
            },
            "cost_usd": {"type": "number", "minimum": 0},
        }
    ),
    "ToolCalls": _object(
        {
            "consumer": {**_NULLABLE_STRING, "description": "null for calls without a valid key."},
            "server": _NULLABLE_STRING,
            "tool": {**_NULLABLE_STRING, "description": "The tool the call named; null when it named none."},
            "calls": _TOKENS,
            "errors": {
                **_TOKENS,
                "description": "Calls refused, failed, or answered with an error (a JSON-RPC error or a tool "
                "result marked isError).",
            },
            "latency_ms": {"type": "number", "minimum": 0, "description": "The calls' mean latency."},
        }
    ),
    "Attempt": _object(
        {
            "provider": {"type": "string"},
            "status": {"type": "integer"},
            "latency_ms": {"type": "number"},
        }
    ),
    "UsageRecord": _object(
        {
            "ts": {"type": "string", "description": "Start of the call, ISO-8601 UTC."},
            "request_id": {"type": "string"},
            "route": _NULLABLE_STRING,
            "consumer": _NULLABLE_STRING,
            "provider": _NULLABLE_STRING,
            "model_requested": _NULLABLE_STRING,
            "model_upstream": _NULLABLE_STRING,
            "status": {"type": "integer"},
            "reason": _NULLABLE_STRING,
            "blocked_by": _NULLABLE_STRING,
            "stream": {"type": "boolean"},
            "input_tokens": _TOKENS,
            "output_tokens": _TOKENS,
            "cached_tokens": _TOKENS,
            "reasoning_tokens": _TOKENS,
            "tokens_estimated": {"type": "boolean"},
            "cost_usd": {
                "type": ["number", "null"],
                "description": "US dollars; null for an unpriced model, or an images or audio call answered "
                "with no token usage.",
            },
            "latency_ms": {"type": "number"},
            "ttft_ms": {"type": ["number", "null"]},
            "client_ip": _NULLABLE_STRING,
            "attempts": {"type": "array", "items": _ref("Attempt")},
            "attributes": {"type": ["object", "null"]},
            "api": {
                "type": ["string", "null"],
                "description": "Which API the call was (chat, completions, responses, messages, count_tokens, "
                "embeddings, images, audio, moderations, files, batches, models, mcp, other); null in records "
                "stored before it was kept.",
            },
            "cache": {
                "type": ["string", "null"],
                "enum": ["hit", "semantic", "miss", "skip", None],
                "description": "What ai-cache made of the call: hit (exact), semantic, miss, or skip (the "
                "client's Cache-Control); null where no ai-cache applies.",
            },
            "cost_saved_usd": {
                "type": ["number", "null"],
                "description": "For a cache hit: what its tokens cost when the answer was made (cost_usd "
                "is 0); null for every other call and for an unpriced model.",
            },
            "mcp_method": {
                **_NULLABLE_STRING,
                "description": "An MCP call's JSON-RPC method (initialize, tools/list, tools/call, …); null for "
                "every other call.",
            },
            "mcp_tool": {
                **_NULLABLE_STRING,
                "description": "The tool an MCP tools/call named; null for every other call.",
            },
            "cache_write_tokens": {
                **_TOKENS,
                "description": "The part of input_tokens written to the provider's prompt cache (Anthropic's "
                "cache_creation_input_tokens), priced at the cache-write price (writes to Anthropic's one-hour "
                "cache, which this total includes, at the one-hour cache-write price); 0 in records stored "
                "before it was kept.",
            },
        }
    ),
}

_AUTHENTICATED: list[dict[str, list[str]]] = [{"adminToken": []}]
_PUBLIC: list[dict[str, list[str]]] = []

_PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness: the process answers.",
            "security": _PUBLIC,
            "responses": {"200": _text("`ok`.")},
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: config built, database and state store answering.",
            "security": _PUBLIC,
            "responses": {
                "200": _json("Ready.", _ref("Readiness")),
                "503": _json("Not ready; `checks` names the reason.", _ref("Readiness")),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics (text exposition format).",
            "responses": {"200": _text("The metrics."), "401": _UNAUTHORIZED},
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document.",
            "responses": {
                "200": _json("The admin API's OpenAPI 3.1 document.", {"type": "object"}),
                "401": _UNAUTHORIZED,
            },
        }
    },
    "/api/reload": {
        "post": {
            "summary": "Reload the config file (as SIGHUP does).",
            "responses": {
                "200": _json("The new config is in effect.", _ref("Reloaded")),
                "400": _json("The file is invalid; the running config stays.", _ref("ReloadRejected")),
                "401": _UNAUTHORIZED,
            },
        }
    },
    "/api/consumers": {
        "get": {
            "summary": "Every consumer: the config file's first, then runtime ones. Never a key.",
            "parameters": [
                {
                    "name": "spend",
                    "in": "query",
                    "required": False,
                    "description": "`true`: each consumer with its current `spend` too, one read per budget "
                    "(a group's once), so one call shows a table of any number of consumers.",
                    "schema": {"type": "string", "enum": ["true", "false", "1", "0"], "default": "false"},
                }
            ],
            "responses": {
                "200": _json("The consumers.", _object({"consumers": {"type": "array", "items": _ref("Consumer")}})),
                "400": _error("`spend` is neither true nor false."),
                "401": _UNAUTHORIZED,
                "503": _error("The database, or with `spend=true` the state store, did not answer. Retry."),
            },
        },
        "post": {
            "summary": "Add a runtime consumer; the answer shows its key, the only time it is shown.",
            "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("NewConsumer")}}},
            "responses": {
                "201": _json("Created.", _ref("CreatedConsumer")),
                "400": _error("The body is not a consumer (unknown fields, a missing or invalid name)."),
                "401": _UNAUTHORIZED,
                "409": _error("The name is taken (by a runtime consumer or the config file)."),
                "503": _UNAVAILABLE,
            },
        },
    },
    "/api/consumers/{name}": {
        "get": {
            "summary": "One consumer, with its budget, max_parallel, expiry and current spend. Never a key.",
            "parameters": _NAME_PARAMETER,
            "responses": {
                "200": _json("The consumer.", _ref("ConsumerDetail")),
                "400": _BAD_NAME,
                "401": _UNAUTHORIZED,
                "404": _error("No such consumer."),
                "503": _UNAVAILABLE,
            },
        },
        "patch": {
            "summary": "Change some of a runtime consumer's fields; every replica serves the change within a second.",
            "parameters": _NAME_PARAMETER,
            "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("ConsumerEdit")}}},
            "responses": {
                "200": _json("The consumer as it now is.", _ref("ConsumerDetail")),
                "400": _error("The body is not an edit (unknown fields, a value of the wrong form)."),
                "401": _UNAUTHORIZED,
                "404": _error("No such consumer."),
                "409": _CONFIG_CONSUMER,
                "503": _UNAVAILABLE,
            },
        },
        "delete": {
            "summary": "Revoke a runtime consumer: its key stops working on every worker within a second.",
            "parameters": _NAME_PARAMETER,
            "responses": {
                "204": {"description": "Revoked."},
                "400": _BAD_NAME,
                "401": _UNAUTHORIZED,
                "404": _error("No such consumer."),
                "409": _CONFIG_CONSUMER,
                "503": _UNAVAILABLE,
            },
        },
    },
    "/api/consumers/{name}/rotate": {
        "post": {
            "summary": "Give a runtime consumer a new key; the old one keeps working for `grace_s` seconds "
            "(default 0), then stops on every replica.",
            "parameters": _NAME_PARAMETER,
            "requestBody": {"required": False, "content": {_JSON: {"schema": _ref("Rotation")}}},
            "responses": {
                "200": _json("The new key, shown this once.", _ref("RotatedKey")),
                "400": _error("`grace_s` is not a number of seconds from 0 to a week."),
                "401": _UNAUTHORIZED,
                "404": _error("No such consumer."),
                "409": _CONFIG_CONSUMER,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/groups": {
        "get": {
            "summary": "Every declared group: the config file's first, then runtime ones, with members and spend.",
            "responses": {
                "200": _json("The groups.", _object({"groups": {"type": "array", "items": _ref("Group")}})),
                "401": _UNAUTHORIZED,
                "503": _UNAVAILABLE,
            },
        },
        "post": {
            "summary": "Declare a runtime group with a budget and/or max_parallel binding all its members.",
            "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("NewGroup")}}},
            "responses": {
                "201": _json("Declared.", _ref("Group")),
                "400": _error("The body is not a group (unknown fields, a missing or invalid name)."),
                "401": _UNAUTHORIZED,
                "409": _error("The name is declared already (by a runtime group or the config file)."),
                "503": _UNAVAILABLE,
            },
        },
    },
    "/api/groups/{name}": {
        "get": {
            "summary": "One declared group, with members and spend.",
            "parameters": _NAME_PARAMETER,
            "responses": {
                "200": _json("The group.", _ref("Group")),
                "400": _BAD_NAME,
                "401": _UNAUTHORIZED,
                "404": _error("No such group."),
                "503": _UNAVAILABLE,
            },
        },
        "patch": {
            "summary": "Change a runtime group's budget or max_parallel; every replica holds calls to it within a "
            "second.",
            "parameters": _NAME_PARAMETER,
            "requestBody": {"required": True, "content": {_JSON: {"schema": _ref("GroupEdit")}}},
            "responses": {
                "200": _json("The group as it now is.", _ref("Group")),
                "400": _error("The body is not an edit."),
                "401": _UNAUTHORIZED,
                "404": _error("No such runtime group."),
                "409": _error("The group is declared in the config file; change it there."),
                "503": _UNAVAILABLE,
            },
        },
        "delete": {
            "summary": "Remove a runtime group; its members keep naming it, as a plain label without limits.",
            "parameters": _NAME_PARAMETER,
            "responses": {
                "204": {"description": "Removed."},
                "400": _BAD_NAME,
                "401": _UNAUTHORIZED,
                "404": _error("No such runtime group."),
                "409": _error("The group is declared in the config file; remove it there."),
                "503": _UNAVAILABLE,
            },
        },
    },
    "/api/audit": {
        "get": {
            "summary": "The audit log: every admin write, newest first. Never a key.",
            "parameters": [
                _WINDOW[0],
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                },
            ],
            "responses": {
                "200": _json("The events.", _object({"events": {"type": "array", "items": _ref("AuditEvent")}})),
                "400": _error("A parameter is invalid."),
                "401": _UNAUTHORIZED,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/usage": {
        "get": {
            "summary": "Usage summed by one grouping, within a window.",
            "parameters": [
                {
                    "name": "by",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": list(GROUPINGS), "default": "consumer"},
                },
                *_WINDOW,
                _CONSUMER_FILTER,
            ],
            "responses": {
                "200": _json(
                    "Busiest first (by time: oldest first).",
                    _object({"rows": {"type": "array", "items": _ref("UsageRow")}}),
                ),
                "400": _error("A parameter is invalid."),
                "401": _UNAUTHORIZED,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/requests": {
        "get": {
            "summary": "The latest usage records, newest first.",
            "parameters": [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
                },
                *_WINDOW,
                _CONSUMER_FILTER,
                {
                    "name": "before",
                    "in": "query",
                    "required": False,
                    "description": "A page's `next`: the records after that page, in the same order.",
                    "schema": {"type": "string", "pattern": r"^[0-9]{1,19}\.[0-9]{1,19}$"},
                },
            ],
            "responses": {
                "200": _json(
                    "The records; `next` (null on the last page) is the `before` of the page after it.",
                    _object(
                        {
                            "requests": {"type": "array", "items": _ref("UsageRecord")},
                            "next": {"type": ["string", "null"]},
                        }
                    ),
                ),
                "400": _error("A parameter is invalid."),
                "401": _UNAUTHORIZED,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/api/mcp/tools": {
        "get": {
            "summary": "MCP tool calls (tools/call) per consumer, MCP server and tool, busiest first (at most "
            "1000 rows).",
            "parameters": [*_WINDOW, _CONSUMER_FILTER],
            "responses": {
                "200": _json("The rows.", _object({"tools": {"type": "array", "items": _ref("ToolCalls")}})),
                "400": _error("A parameter is invalid."),
                "401": _UNAUTHORIZED,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/": {
        "get": {
            "summary": "The dashboard (its page holds no data; it asks for the admin token).",
            "security": _PUBLIC,
            "responses": {"200": _text("The dashboard's page.", "text/html")},
        }
    },
    "/dashboard/{file}": {
        "get": {
            "summary": "The dashboard's script, style sheet and images.",
            "security": _PUBLIC,
            "parameters": [
                {
                    "name": "file",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]*$"},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {
                        media_type: {"schema": {"type": "string"}}
                        for media_type in ("text/javascript", "text/css", "image/svg+xml", "text/html")
                    },
                },
                "400": _error("The path has control characters: no file is named so."),
                "401": _unauthorized(
                    "No such file, asked without the admin token (the files are public; other paths not)."
                ),
                "404": _error("No such file."),
            },
        }
    },
}


# Every route reads its whole body before it runs (a GET's too), so any of them can
# answer these two (SPEC §14).
_BODY_LIMITS = {
    "408": {"$ref": "#/components/responses/BodyStalled"},
    "413": {"$ref": "#/components/responses/BodyTooLarge"},
}
_RESPONSES = {
    "BodyStalled": _error("The request body stopped arriving (`server.body_timeout_s`)."),
    "BodyTooLarge": _error("The request body is larger than 1 MiB."),
}


def _paths() -> dict[str, Any]:
    return {
        path: {
            method: {**op, "responses": dict(sorted({**op["responses"], **_BODY_LIMITS}.items()))}
            for method, op in item.items()
        }
        for path, item in _PATHS.items()
    }


def document(version: str) -> dict[str, Any]:
    """The admin API's OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tollway admin API",
            "version": version,
            "description": "Served on the admin port. With `admin.token` set, every operation without "
            "an empty `security` needs `Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/"}],
        "security": _AUTHENTICATED,
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "responses": _RESPONSES,
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def register(admin: AdminApp, version: str) -> None:
    answer = json_reply(200, document(version))

    async def openapi(req: AdminRequest) -> Answer:
        return answer

    admin.add("GET", PATH, openapi)
