"""Granted claims the database refused: operators list them and settle each one.

The gate told the user "claimed"; the drain found the database refusing the grant (see `drain._land`) and
copied it to the refused stream, where it stays until an operator settles it, either way:

- `reissue`: claim the coupon again for that user through the SQL claim path (`claims.insert_claim`): a new
  claim row under the unique claim keys and the conditional stock update, so the database alone decides
  whether the stock and the limits allow it, and a refusal is the claim's own 409 (nothing changes). The
  row takes the coupon id the user was told (the gate's ids are reserved, so it is free unless the refusal
  was that very id), so the claim's replayed answer names the coupon the user now holds;
- `dismiss`: settle it without a coupon, for a reason (compensated otherwise, a duplicate grant, …).

The resolution row, unique per refused entry and per grant, commits together with the re-issued claim
row; only then is the entry deleted from the stream. Resolving again, or two operators at once, returns
the one resolution. An entry whose resolution committed but whose delete was lost (a crash between the
two) is deleted by the next resolve or list.
"""

import re
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.core.clock import now_utc
from app.core.db import after_commit, among, db
from app.core.errors import Conflict, Invalid, NotFound
from app.core.pagination import decode_cursor, encode_cursor
from app.coupons import claims
from app.coupons.flash import gate, loading
from app.coupons.flash.drain import Grant
from app.coupons.models import CouponRefusalResolution, CouponTemplate

ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def _refusal(entry_id: str, fields: dict[str, str]) -> dict:
    grant = Grant.parse(fields.get("entry", entry_id), fields)
    return {
        "id": entry_id,
        "template_id": grant.template_id,
        "user_id": grant.user_id,
        "coupon_id": grant.coupon_id,
        "grant_id": grant.grant_id,
        "reason": fields.get("reason", ""),
        "granted_at": grant.claimed_at,
        "refused_at": datetime.fromtimestamp(_order(entry_id)[0] / 1000, tz=UTC),
        "origin_share_code": grant.share_code,
        "origin_group_id": grant.group_id,
        "origin_post_id": grant.post_id,
    }


def list_refusals(
    *, template_id: int | None, user_id: int | None, cursor: str | None, limit: int
) -> tuple[list[dict], str | None]:
    """Refused grants still to be settled, newest first."""
    entries = gate.refused_entries()
    settled = (
        set(
            db.session.scalars(
                select(CouponRefusalResolution.refusal_entry).where(
                    among(CouponRefusalResolution.refusal_entry, [entry_id for entry_id, _ in entries])
                )
            )
        )
        if entries
        else set()
    )
    for entry_id in settled:
        gate.forget_refused(entry_id=entry_id)
    before = None
    if cursor:
        (last,) = decode_cursor(cursor, [str])
        if not ENTRY_ID.match(last):
            raise Invalid(
                "The cursor is not one this API issued.", code="invalid_cursor", errors={"cursor": ["Invalid cursor."]}
            )
        before = _order(last)
    page = [
        (entry_id, fields)
        for entry_id, fields in entries
        if entry_id not in settled
        and (before is None or _order(entry_id) < before)
        and (template_id is None or fields.get("t") == str(template_id))
        and (user_id is None or fields.get("u") == str(user_id))
    ][: limit + 1]
    next_cursor = encode_cursor([page[limit - 1][0]]) if len(page) > limit else None
    return [_refusal(entry_id, fields) for entry_id, fields in page[:limit]], next_cursor


def _resolution(entry_id: str, grant_id: str | None = None) -> CouponRefusalResolution | None:
    condition = CouponRefusalResolution.refusal_entry == entry_id
    if grant_id is not None:
        condition = or_(condition, CouponRefusalResolution.gate_grant == grant_id)
    return db.session.scalar(select(CouponRefusalResolution).where(condition))


def resolve_refusal(*, entry_id: str, action: str, note: str | None, operator_id: int) -> CouponRefusalResolution:
    """Settle a refused grant: re-issue the coupon through the SQL claim path, or dismiss it with a reason."""
    missing = NotFound("No such refused grant.", code="coupon_refusal_not_found")
    if not ENTRY_ID.match(entry_id):
        raise missing
    done = _resolution(entry_id)
    if done is None:
        fields = gate.refused_entry(entry_id=entry_id)
        if fields is None:
            raise missing
        done = _settle(entry_id, fields, action=action, note=note and note.strip(), operator_id=operator_id)
    after_commit(lambda: gate.forget_refused(entry_id=entry_id))
    return done


def _settle(
    entry_id: str, fields: dict[str, str], *, action: str, note: str | None, operator_id: int
) -> CouponRefusalResolution:
    grant = Grant.parse(fields.get("entry", entry_id), fields)
    resolution = CouponRefusalResolution(
        refusal_entry=entry_id,
        gate_grant=grant.grant_id,
        template_id=grant.template_id,
        user_id=grant.user_id,
        granted_coupon_id=grant.coupon_id,
        granted_at=grant.claimed_at,
        refusal_reason=fields.get("reason", "")[:255],
        action="reissued" if action == "reissue" else "dismissed",
        note=note,
        resolved_by_id=operator_id,
        resolved_at=now_utc(),
    )
    try:
        # The resolution goes first: its unique keys make a second resolver wait here for the first one's
        # outcome and then fail, before it tries to claim anything.
        with db.session.begin_nested():
            db.session.add(resolution)
    except IntegrityError:
        settled = _resolution(entry_id, grant.grant_id)
        if settled is None:
            raise
        return settled
    template = None
    if action == "reissue":
        template = db.session.get(CouponTemplate, grant.template_id)
        if template is None:
            raise Conflict(
                "The coupon's template does not exist; dismiss this grant instead.", code="coupon_template_missing"
            )
        coupon = claims.insert_claim(
            template,
            user_id=grant.user_id,
            at=resolution.resolved_at,
            origin=claims.Origin(
                share_code=grant.share_code,
                sharer_id=grant.sharer_id,
                group_id=grant.group_id,
                post_id=grant.post_id,
            ),
            claim_key=grant.key_digest or "",
            coupon_id=grant.coupon_id,
        )
        resolution.user_coupon_id = coupon.id
    db.session.flush()
    if template is not None and template.claim_gate == "redis":
        # The gate may have been rebuilt since the refusal and freed the refused grant's stock and count;
        # rebuilt once this commits, it counts the re-issued row instead (the next reconcile would, a minute later).
        template_id = template.id
        after_commit(lambda: loading.load_gate(template_id=template_id))
    return resolution
