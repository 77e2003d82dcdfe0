"""The fan ladder (casual → active → demand → trust), recomputed by a job from member events.

Thresholds (see docs/FAN_LADDER.md): a member's level is the highest one whose rule holds now.
- trust:  at least 2 purchases in the group within the last 365 days (a repeat buyer);
- demand: a demand event (question or request) within 60 days, or 1 purchase within 365 days;
- active: at least 3 engagements (clicked or viewed delivered content) within 30 days;
- casual: joined, nothing more.
Windows let a level fall again when a member goes quiet; trust lasts a year from the second purchase.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, select, update

from app.core.clock import now_utc
from app.core.db import db
from app.groups.models import FAN_LEVELS, ChatGroup, GroupMember, MemberEvent

ACTIVE_WINDOW = timedelta(days=30)
ACTIVE_MIN_ENGAGEMENTS = 3
DEMAND_WINDOW = timedelta(days=60)
PURCHASE_WINDOW = timedelta(days=365)
TRUST_MIN_PURCHASES = 2
GROUPS_PER_BATCH = 500


@dataclass(frozen=True)
class Signals:
    engagements: int
    demands: int
    purchases: int


def level_for(signals: Signals) -> str:
    """The highest level whose rule the signals meet."""
    if signals.purchases >= TRUST_MIN_PURCHASES:
        return "trust"
    if signals.demands >= 1 or signals.purchases >= 1:
        return "demand"
    if signals.engagements >= ACTIVE_MIN_ENGAGEMENTS:
        return "active"
    return "casual"


def _signals_by_member(group_ids: list[int]) -> dict[tuple[int, int], Signals]:
    now = now_utc()
    e = MemberEvent
    counted = lambda condition: func.sum(case((condition, 1), else_=0))  # noqa: E731
    rows = db.session.execute(
        select(
            e.group_id,
            e.user_id,
            counted(e.kind.in_(("clicked", "viewed")) & (e.occurred_at >= now - ACTIVE_WINDOW)).label("engagements"),
            counted((e.kind == "demand") & (e.occurred_at >= now - DEMAND_WINDOW)).label("demands"),
            counted((e.kind == "purchased") & (e.occurred_at >= now - PURCHASE_WINDOW)).label("purchases"),
        )
        .where(e.group_id.in_(group_ids), e.occurred_at >= now - PURCHASE_WINDOW, e.kind != "joined")
        .group_by(e.group_id, e.user_id)
    )
    return {
        (r.group_id, r.user_id): Signals(int(r.engagements or 0), int(r.demands or 0), int(r.purchases or 0))
        for r in rows
    }


def recompute_batch(*, after_group_id: int) -> tuple[int, int] | None:
    """Recompute the levels of the current members of the next GROUPS_PER_BATCH groups after `after_group_id`.

    Returns how many levels changed and the last group id of the batch, or None when no group is left.
    """
    group_ids = list(
        db.session.scalars(
            select(ChatGroup.id).where(ChatGroup.id > after_group_id).order_by(ChatGroup.id).limit(GROUPS_PER_BATCH)
        )
    )
    if not group_ids:
        return None
    signals = _signals_by_member(group_ids)
    now = now_utc()
    members = db.session.execute(
        select(GroupMember.id, GroupMember.group_id, GroupMember.user_id, GroupMember.fan_level).where(
            GroupMember.group_id.in_(group_ids), GroupMember.left_at.is_(None)
        )
    )
    moves: dict[str, list[int]] = {level: [] for level in FAN_LEVELS}
    for m in members:
        level = level_for(signals.get((m.group_id, m.user_id), Signals(0, 0, 0)))
        if level != m.fan_level:
            moves[level].append(m.id)
    changed = 0
    for level, ids in moves.items():
        if ids:
            changed += db.session.execute(
                update(GroupMember).where(GroupMember.id.in_(ids)).values(fan_level=level, fan_level_at=now)
            ).rowcount
    return changed, group_ids[-1]
