"""The typed error tree: every refusal or failure a client can see.

    GatewayError                      status  error.code
    ├── BadRequest                    400     invalid_request_error
    ├── Unauthorized                  401     invalid_api_key
    ├── Forbidden                     403     permission_denied (or a plugin's own code)
    ├── NotFound                      404     route_not_found / model_not_found
    ├── RequestTimeout                408     request_timeout
    ├── BodyTooLarge                  413     request_too_large
    ├── UnsupportedMediaType          415     unsupported_media_type
    ├── HeadersTooLarge               431     request_header_fields_too_large
    ├── RateLimited                   429     rate_limit_exceeded
    ├── UpstreamError                 502     upstream_error
    └── UpstreamTimeout               504     upstream_timeout

Each carries a stable ``reason`` code (``key-auth.unknown_key``) that travels to the
``x-tollway-reason`` header, the usage record and the dashboard. A plugin refuses a
request by raising one of these; ``gateway.error_replies`` turns it into the client's protocol.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A refusal or failure with an HTTP status, an OpenAI-style code and a reason code."""

    status: int = 500
    code: str = "internal_error"
    # The client of a stream was already told of the failure in its protocol's own
    # events (a Responses client's ``error`` and ``response.failed``): no last event.
    told_client: bool = False
    # The request field the error is about (OpenAI's error ``param``), when it is one.
    param: str | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        code: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers: list[tuple[str, str]] = headers or []
        # A plugin-configured JSON body (``blocked_message`` that parses as an object)
        # is sent as it stands instead of the generated error shape.
        self.body = body


class BadRequest(GatewayError):
    status = 400
    code = "invalid_request_error"


class Unauthorized(GatewayError):
    status = 401
    code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    code = "route_not_found"


class MethodNotAllowed(GatewayError):
    """A method the gateway does not relay; ``allowed`` goes in the ``Allow`` header."""

    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: str) -> None:
        super().__init__(message, reason="gateway.method_not_allowed", headers=[("allow", allowed)])


class RequestTimeout(GatewayError):
    status = 408
    code = "request_timeout"


class BodyTooLarge(GatewayError):
    status = 413
    code = "request_too_large"


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class HeadersTooLarge(GatewayError):
    status = 431
    code = "request_header_fields_too_large"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    status = 502
    code = "upstream_error"


class UpstreamStreamFailed(UpstreamError):
    """The provider ended a stream with an error event of its own, which the client was
    sent in its protocol: the call failed, and the stream needs no other last event."""

    told_client = True


class UpstreamTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"
