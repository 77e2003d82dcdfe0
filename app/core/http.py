"""Request-shape declarations for views."""
from typing import Callable


def raw_body(view: Callable) -> Callable:
    """Let a view read a non-JSON body (signed webhooks, WeChat Pay XML notifications)."""
    view._raw_body = True
    return view
