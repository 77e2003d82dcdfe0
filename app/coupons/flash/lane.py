"""The claim lane: `POST /api/v1/coupons/<id>/claim` on a gated template, answered before Flask's request cycle.

In a flash drop thousands of taps a second reach this one route, and its work is one Redis script. Flask's
machinery around that script (request context, routing, before-request hooks, argument parsing, response
finalising) cost the web worker more CPU than the script's round trip: through the view a tap cost ~630 µs
of web-worker CPU and the drop ran at ~0.47 of /healthz's rate; through the lane ~450 µs and 0.55–0.66
(`./scripts/bench claim` with `COUPON_CLAIM_LANE` on and off). So the route has this fast path in front.
It is the route's own path, not a second route: it validates with the route's schema, authenticates with
`accounts.authenticate`, claims with `claims.claim_through_gate`, answers with the view's `claimed_response`
and the one error envelope.

Whatever it cannot settle by itself goes to the Flask view with the body untouched, which then answers
exactly as it does without the lane: a request the route would refuse (no Idempotency-Key, no bearer token,
a body of another type or shape, an id no BIGINT holds), a session to confirm, a template without a gate,
an error the lane did not expect. Handing over after the script ran is safe: the view's claim with the same
Idempotency-Key replays the script's answer.
"""

import json
import logging
import re
from io import BytesIO

from flask import Flask
from marshmallow import ValidationError

from app.accounts import service as accounts
from app.core.access import SessionUnverified
from app.core.errors import ApiError, envelope
from app.core.http import MAX_ID, is_json_body, refuse_unreadable_json
from app.core.idempotency import MAX_KEY_LENGTH
from app.coupons import claims
from app.coupons.api import claimed_response
from app.coupons.schemas import ClaimSchema

log = logging.getLogger(__name__)

CLAIM_PATH = re.compile(r"/api/v1/coupons/([1-9][0-9]{0,18})/claim")
MAX_BODY_BYTES = 4096  # a claim's body is three optional fields; anything bigger is the view's to refuse
CLAIM_SCHEMA = ClaimSchema()


class ClaimLane:
    """WSGI middleware answering gated claims; every other request reaches `wsgi_app` untouched."""

    def __init__(self, app: Flask, wsgi_app) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict, start_response):
        if environ["REQUEST_METHOD"] == "POST" and self.app.config["COUPON_CLAIM_LANE"]:
            matched = CLAIM_PATH.fullmatch(environ.get("PATH_INFO", ""))
            template_id = int(matched.group(1)) if matched is not None else MAX_ID + 1
            if template_id <= MAX_ID:
                response = self._answer(environ, template_id)
                if response is not None:
                    return response(environ, start_response)
        return self.wsgi_app(environ, start_response)

    def _answer(self, environ: dict, template_id: int):
        """The claim's response, or None to leave the request to the Flask view."""
        request_key = environ.get("HTTP_IDEMPOTENCY_KEY", "").strip()
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        token = token.strip()
        if (
            not request_key
            or len(request_key) > MAX_KEY_LENGTH
            or scheme.lower() != "bearer"
            or not token
            or not is_json_body(environ)
        ):
            return None
        args = _arguments(environ)
        if args is None:
            return None
        with self.app.app_context():
            try:
                found = accounts.authenticate(token=token, fenced=True)
                if found is None:
                    return None
                user_id = found.user_id if found.user is None else found.user.id
                claimed = claims.claim_through_gate(
                    template_id=template_id, user_id=user_id, request_key=request_key, session_fence=found.fence, **args
                )
                return None if claimed is None else claimed_response(claimed)
            except ApiError as refused:
                return envelope(refused.status, refused.code, refused.message, refused.errors)
            except SessionUnverified:
                return None
            except Exception:
                log.warning("claim lane: handing a claim to the view after an error", exc_info=True)
                return None


def _arguments(environ: dict) -> dict | None:
    """The body, read once and put back for the view, loaded by the route's schema; None if it does not load."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= MAX_BODY_BYTES:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = BytesIO(body)
    if len(body) != length:
        return None
    try:
        refuse_unreadable_json(body)  # as the view's before-request check would; also keeps json.loads off deep bodies
        return CLAIM_SCHEMA.load(json.loads(body))
    except (ApiError, ValueError, TypeError, ValidationError):
        return None
