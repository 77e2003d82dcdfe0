"""One error envelope for every failure: {"code", "status", "message", "errors"}."""

import logging
from typing import Any

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from app.core.db import db

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    428: "precondition_required",
    429: "rate_limited",
    500: "internal_error",
    502: "upstream_error",
    503: "unavailable",
}


VALIDATION_MESSAGE = "The request is not valid; see errors for each field."


class ApiError(Exception):
    """A domain error that knows its HTTP status and stable error code."""

    status = 400
    code = "bad_request"
    message = "The request cannot be processed."

    def __init__(
        self, message: str | None = None, *, code: str | None = None, status: int | None = None, errors: Any = None
    ):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.errors = errors


class NotFound(ApiError):
    status, code, message = 404, "not_found", "The resource does not exist."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "You may not do this."


class Unauthenticated(ApiError):
    status, code, message = 401, "unauthenticated", "Log in first."


class Conflict(ApiError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class Invalid(ApiError):
    status, code, message = 422, "validation_error", "The request is not valid."


class UpstreamError(ApiError):
    status, code, message = 502, "upstream_error", "An upstream service failed."


def envelope(status: int, code: str, message: str, errors: Any = None):
    """Build the JSON error response."""
    response = jsonify({"code": code, "status": status, "message": message, "errors": errors or {}})
    response.status_code = status
    return response


def http_exception_response(exc: HTTPException):
    """Turn any werkzeug/webargs/limiter HTTP exception into the envelope."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = data.get("messages") or data.get("errors")
    if isinstance(errors, dict) and set(errors) <= {"json", "query", "headers", "files", "form", "view_args"}:
        errors = dict(errors.items()) if len(errors) > 1 else next(iter(errors.values()), {})
    code = data.get("code") or HTTP_CODES.get(status, "http_error")
    if status == 400 and errors == ["Invalid JSON body."]:
        code, data = "malformed_json", {"message": "The body is not valid JSON."}
    message = data.get("message") or (VALIDATION_MESSAGE if status == 422 else exc.description or exc.name)
    response = envelope(status, code, message, errors)
    if status == 405 and exc.get_response().headers.get("Allow"):
        response.headers["Allow"] = exc.get_response().headers["Allow"]
    if status == 429:
        retry_after = getattr(exc, "retry_after", None) or exc.get_response().headers.get("Retry-After")
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
    return response


def register_error_handlers(app: Flask) -> None:
    """Install the handlers; flask-smorest's own HTTP handler is replaced in the Api subclass."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return envelope(exc.status, exc.code, exc.message, exc.errors)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return http_exception_response(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        db.session.rollback()
        return envelope(500, "internal_error", "Something went wrong on our side.")
