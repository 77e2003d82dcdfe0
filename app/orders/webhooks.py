"""Signed order webhooks: HMAC-SHA256 over `timestamp.body` with the source's secret.

Headers: `X-Mmq-Timestamp` (Unix seconds) and `X-Mmq-Signature` (hex digest, optionally prefixed
`sha256=`). A timestamp more than five minutes from our clock, either way, is refused; signatures are
compared in constant time; an event id already processed for the source is acknowledged without effect.
The event record commits in the same transaction as the order change it caused.
"""

import hashlib
import hmac
import json
import re
import secrets

from marshmallow import ValidationError
from sqlalchemy import select

from app.core.clock import now_utc
from app.core.db import db, upsert_insert
from app.core.errors import ApiError, Conflict, Invalid
from app.orders import flows
from app.orders.events import IngestResult, LineEvent, OrderEventIn
from app.orders.models import OrderWebhookEvent, OrderWebhookSource
from app.orders.schemas import WebhookInSchema

TIMESTAMP_HEADER = "X-Mmq-Timestamp"
SIGNATURE_HEADER = "X-Mmq-Signature"
TOLERANCE_SECONDS = 300
SOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")


class _Duplicate(Exception):
    pass


def _refused(message: str, code: str) -> ApiError:
    return ApiError(message, status=401, code=code)


def sign(*, secret: str, timestamp: str, body: bytes) -> str:
    """The signature a sender puts in X-Mmq-Signature."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _verify(source: str, timestamp: str | None, signature: str | None, body: bytes) -> None:
    if not timestamp or not signature:
        raise _refused("Sign the request (X-Mmq-Timestamp and X-Mmq-Signature).", "signature_missing")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise _refused("The timestamp is not Unix seconds.", "timestamp_invalid")
    if abs(now_utc().timestamp() - int(timestamp)) > TOLERANCE_SECONDS:
        raise _refused("The timestamp is too far from now.", "timestamp_out_of_tolerance")
    known_shape = SOURCE_NAME.fullmatch(source) is not None
    row = (
        db.session.scalar(
            select(OrderWebhookSource).where(OrderWebhookSource.name == source, OrderWebhookSource.is_active.is_(True))
        )
        if known_shape
        else None
    )
    # An unknown source is checked against a throwaway secret, so it costs the same and reads the same.
    secret = row.secret if row is not None else secrets.token_hex(16)
    given = signature.removeprefix("sha256=").strip().lower()
    if (
        not hmac.compare_digest(sign(secret=secret, timestamp=timestamp, body=body).encode(), given.encode())
        or row is None
    ):
        raise _refused("The signature does not match.", "signature_invalid")


def _record_event(source: str, event_id: str):
    def record(results: list[IngestResult]) -> None:
        inserted = db.session.execute(
            upsert_insert(OrderWebhookEvent)
            .values(source=source, event_id=event_id, order_id=results[0].order_id, received_at=now_utc())
            .on_conflict_do_nothing(index_elements=["source", "event_id"])
            .returning(OrderWebhookEvent.id)
        ).scalar()
        if inserted is None:
            raise _Duplicate()

    return record


def receive(*, source: str, timestamp: str | None, signature: str | None, body: bytes) -> dict:
    """Verify, deduplicate and ingest one signed order event (one use case, retried on IntegrityError by its view)."""
    _verify(source, timestamp, signature, body)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested past the decoder's limit
        raise ApiError("The body is not JSON.", status=400, code="invalid_json") from None
    try:
        data = WebhookInSchema().load(payload if isinstance(payload, dict) else {})
    except ValidationError as exc:
        raise Invalid("The event is not valid; see errors.", code="validation_error", errors=exc.messages) from exc
    seen = db.session.scalar(
        select(OrderWebhookEvent.order_id).where(
            OrderWebhookEvent.source == source, OrderWebhookEvent.event_id == data["event_id"]
        )
    )
    if seen is not None:
        return {"order_id": seen, "outcome": "duplicate"}
    event = event_from(source=source, order=data["order"], payload=payload["order"])
    try:
        result = flows.ingest_events(events=[event], and_then=_record_event(source, data["event_id"]))[0]
    except _Duplicate:
        return {"order_id": None, "outcome": "duplicate"}
    return {"order_id": result.order_id, "outcome": result.outcome}


def event_from(*, source: str, order: dict, payload: dict) -> OrderEventIn:
    """Build an ingestion event from a validated order object (webhook body or statement-file row)."""
    return OrderEventIn(
        source=source,
        external_id=order["external_id"],
        status=order["status"],
        version=order["version"],
        event_at=order["event_at"],
        paid_at=order["paid_at"],
        completed_at=order["completed_at"],
        buyer_id=order["buyer_id"],
        buyer_openid=order["buyer_openid"],
        tracking_code=order["tracking_code"],
        lines=[LineEvent(**line) for line in order["lines"]],
        payload=payload,
    )


def check_source_name(*, name: str) -> None:
    """Refuse a name no union or merchant may report orders as: the checkout's "own", or not 1-32 letters, digits,
    '-' or '_' (422 `source_reserved` / `source_name_invalid`)."""
    if name == "own":
        raise Invalid("Own orders come from the checkout, never from a webhook or a statement.", code="source_reserved")
    if not SOURCE_NAME.fullmatch(name):
        raise Invalid("A source name is 1-32 letters, digits, '-' or '_'.", code="source_name_invalid")


def add_source(*, name: str, secret: str | None = None) -> OrderWebhookSource:
    """Register a union or merchant that may send order webhooks; returns it with its secret."""
    check_source_name(name=name)
    if db.session.scalar(select(OrderWebhookSource).where(OrderWebhookSource.name == name)) is not None:
        raise Conflict("This source exists.", code="source_exists")
    row = OrderWebhookSource(name=name, secret=secret or secrets.token_hex(32), is_active=True, created_at=now_utc())
    db.session.add(row)
    db.session.flush()
    return row
