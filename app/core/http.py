"""Request-shape declarations for views, and views as the edges of their use cases."""

import functools
import json
import re
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app
from marshmallow import validate
from werkzeug.routing import IntegerConverter

from app.core.db import run_use_case, use_case
from app.core.errors import ApiError, Invalid

# Far more than any body the API takes, far less than the recursion limit that parsing, validating, hashing
# (idempotency) and storing a body each run into (a RecursionError, i.e. a 500, at ~1000 levels).
MAX_JSON_DEPTH = 64
# PostgreSQL text cannot hold NUL, and no store can encode a lone surrogate (JSON's "\ud800", or a byte not in
# UTF-8 read from a file or a URL as "surrogateescape"; a valid pair decodes to one character, so any surrogate
# left in a decoded string is lone).
UNSTORABLE_CHARACTERS = r"\x00\ud800-\udfff"  # escapes: the pattern goes into the OpenAPI spec (UTF-8)
UNSTORABLE = re.compile(f"[{UNSTORABLE_CHARACTERS}]")
UNSTORABLE_MESSAGE = "NUL characters and lone surrogates are not allowed."
# The same refusal as a schema field's validator, for text that reaches a schema without the JSON body check
# (query strings, imported files): a 422, not a 500 at the database.
STORABLE = validate.Regexp(
    f"^[^{UNSTORABLE_CHARACTERS}]*$", error="NUL characters and text not in UTF-8 are not allowed."
)
# JSON can only spell those characters as escapes; a body without one (nearly every body) needs no decoding here.
UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")

# Ids are BIGINT; a larger number in a URL names nothing, so it must be a 404 rather than a database error.
MAX_ID = 2**63 - 1


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` that only matches values a BIGINT column can hold."""

    def __init__(self, map, fixed_digits=0, min=None, max=None, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=MAX_ID if max is None else max, signed=signed)


def raw_body(view: Callable) -> Callable:
    """Let a view read a non-JSON body (signed webhooks, WeChat Pay XML notifications)."""
    view._raw_body = True
    return view


def is_json_body(environ: dict) -> bool:
    """`request.is_json` from the WSGI environ, without parsing the header's options (every body pays it)."""
    mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
    return mimetype == "application/json" or (mimetype.startswith("application/") and mimetype.endswith("+json"))


def refuse_unreadable_json(body: bytes) -> None:
    """Refuse a JSON body nested deeper than MAX_JSON_DEPTH (400) or holding text no store keeps (422)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH and UNSTORABLE_ESCAPE.search(body) is None:
        return
    try:
        value = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        return  # not JSON at all: the body's parser answers that (400 malformed_json)
    errors = _unstorable_text(value)
    if errors:
        raise Invalid("The request is not valid; see errors for each field.", errors=errors)


def _too_deep() -> ApiError:
    return ApiError(f"The body nests deeper than {MAX_JSON_DEPTH} levels.", status=400, code="json_too_deep")


def _unstorable_text(value: Any) -> dict:
    """Errors by path (as marshmallow nests them) for each key or string holding NUL or a lone surrogate."""
    errors: dict = {}
    pending = [(value, (), 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            if UNSTORABLE.search(item):
                _put(errors, path)
        elif isinstance(item, (dict, list)):
            if depth == MAX_JSON_DEPTH:
                raise _too_deep()
            for key, inner in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(key, str) and UNSTORABLE.search(key):
                    _put(errors, path + (key,))
                else:
                    pending.append((inner, path + (key,), depth + 1))
    return errors


def _put(errors: dict, path: tuple) -> None:
    if not path:
        errors["_schema"] = [UNSTORABLE_MESSAGE]
        return
    for step in path[:-1]:
        errors = errors.setdefault(step, {})
    errors[path[-1]] = [UNSTORABLE_MESSAGE]


def retried_on(*errors: type[BaseException], attempts: int = 3) -> Callable:
    """Run the view's whole use case again from the start when it fails with one of `errors`.

    For views whose writes can lose a race to a concurrent writer (a unique key taken meanwhile): the next
    attempt reads what that writer committed. The request body is cached, so every attempt reads the same.
    """

    def decorator(view: Callable) -> Callable:
        view._use_case_retry = (errors, attempts)  # type: ignore[attr-defined]
        return view

    return decorator


def before_use_case(step: Callable[..., object]) -> Callable:
    """Run `step(**url_arguments)` as a use case of its own before the view's, committed whatever the view then
    answers.

    For work that must stand even when the view refuses: the checkout lands the caller's just-granted coupons
    before pricing an order with one; a cancel closes the order at WeChat, or records the payment WeChat reports
    instead, before answering (409 when it was paid meanwhile).
    """

    def decorator(view: Callable) -> Callable:
        view._before_use_case = (*getattr(view, "_before_use_case", ()), step)  # type: ignore[attr-defined]
        return view

    return decorator


def views_as_use_cases(app: Flask) -> None:
    """Make every registered view the edge of its use case: one transaction, committed when it answers below 400.

    A view that raises or answers a refusal (a 4xx returned rather than raised) leaves nothing written.
    """
    for endpoint, view in list(app.view_functions.items()):
        if getattr(view, "_use_case_edge", False):
            continue
        app.view_functions[endpoint] = _as_use_case(view)


def _as_use_case(view: Callable) -> Callable:
    retry_on, attempts = getattr(view, "_use_case_retry", ((), 1))
    steps = getattr(view, "_before_use_case", ())

    def answer(*args: Any, **kwargs: Any) -> Response:
        with use_case() as unit:
            response = current_app.make_response(view(*args, **kwargs))
            if response.status_code >= 400:
                unit.abandon()
        return response

    @functools.wraps(view)
    def edge(*args: Any, **kwargs: Any) -> Response:
        for step in steps:
            run_use_case(lambda step=step: step(**kwargs))
        return run_use_case(lambda: answer(*args, **kwargs), retry_on=retry_on, attempts=attempts)

    edge._use_case_edge = True  # type: ignore[attr-defined]
    return edge
