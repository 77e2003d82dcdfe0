"""Idempotency-Key handling for POSTs that create money-affecting things.

The key's record is written in the request's use case with the effect and the stored response, and the
view's edge commits them once, together: a crash at any point leaves either all of them or none, never a
key without its answer.
A retry either replays the stored response or, if the first attempt is still running, waits on the
unique index and then replays. The same key with a different body is refused (422). Only successful
responses are stored; a refused request is rolled back by its edge together with its key record, so it
changed nothing and may be retried as is.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps

from flask import Response, current_app, g, request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.core.clock import now_utc
from app.core.db import abandon_use_case, db
from app.core.errors import ApiError, Conflict
from app.core.jobs import job
from app.core.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


def _request_hash() -> str:
    body = request.get_data(cache=True)
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), canonical):
        digest.update(part + b"\0")
    return digest.hexdigest()


def _replay(record: IdempotencyRecord, request_hash: str) -> Response:
    if record.request_hash != request_hash:
        raise ApiError(
            "This Idempotency-Key was used with a different request.", status=422, code="idempotency_key_reused"
        )
    if record.response_status is None:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed.", code="idempotency_key_in_progress"
        )
    response = current_app.response_class(
        record.response_body, status=record.response_status, mimetype="application/json"
    )
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(owner: str, scope: str, key: str) -> IdempotencyRecord | None:
    return db.session.scalar(select(IdempotencyRecord).filter_by(owner=owner, scope=scope, key=key))


def idempotent(view: Callable) -> Callable:
    """Require an Idempotency-Key and make the decorated POST safe to retry."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER, "").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            raise ApiError(
                f"Send a {HEADER} header (1–{MAX_KEY_LENGTH} characters) so this request can be retried safely.",
                status=428,
                code="idempotency_key_required",
            )
        owner = str(g.user.id) if g.get("user") is not None else "anonymous"
        scope = request.endpoint or request.path
        request_hash = _request_hash()
        existing = _find(owner, scope, key)
        if existing is not None:
            return _replay(existing, request_hash)
        record = IdempotencyRecord(owner=owner, scope=scope, key=key, request_hash=request_hash, created_at=now_utc())
        try:
            # A concurrent first attempt holds the key's index entry until it commits; then this one replays it.
            with db.session.begin_nested():
                db.session.add(record)
        except IntegrityError:
            return _replay(_find(owner, scope, key), request_hash)
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code >= 300:
            abandon_use_case()  # not an answer to keep: the key goes with the rest, so it may be retried as is
            return response
        record.response_status = response.status_code
        record.response_body = response.get_data(as_text=True)
        db.session.flush()
        return response

    wrapper._apidoc = dict(getattr(view, "_apidoc", {}))
    manual = dict(wrapper._apidoc.get("manual_doc", {}))
    manual["parameters"] = list(manual.get("parameters", [])) + [
        {
            "in": "header",
            "name": HEADER,
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
            "description": "A client-chosen key; retries with the same key replay the first response.",
        }
    ]
    wrapper._apidoc["manual_doc"] = manual
    return wrapper


@job
def purge_expired() -> int:
    """Delete records older than the retention window (a scheduled job)."""
    cutoff = now_utc() - timedelta(seconds=current_app.config["IDEMPOTENCY_TTL_SECONDS"])
    return db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)).rowcount
