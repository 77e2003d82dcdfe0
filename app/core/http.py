"""Request-shape declarations for views."""
from typing import Callable

from werkzeug.routing import IntegerConverter

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
