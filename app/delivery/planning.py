"""Planning: each time zone of a post's groups has its next occurrence planned (one row per post, zone, slot)."""

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from app.accounts import service as accounts
from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import db, upsert_insert
from app.delivery import schedule
from app.delivery.models import Post, PostOccurrence, PostTarget
from app.groups import service as groups


def post_author(post: Post) -> Actor:
    """The post's author as an actor: an operator's posts reach any group, a host's only the host's own."""
    author = accounts.get_user(user_id=post.author_id)
    return Actor(id=author.id, operator="operator" in accounts.roles_of(author))


def post_targets(post: Post) -> dict:
    """Arguments for the groups service: who a post targets (hosts only ever reach their own groups)."""
    group_ids = None
    if post.target_mode == "groups":
        group_ids = list(db.session.scalars(select(PostTarget.group_id).where(PostTarget.post_id == post.id)))
    return {
        "group_ids": group_ids,
        "group_filter": post.target_filter if post.target_mode == "filter" else None,
        "host_id": None if post_author(post).operator else post.author_id,
    }


def plan_post(post: Post, *, now: datetime | None = None) -> int:
    """Make sure each time zone of the post's groups has its next occurrence planned; returns how many were added."""
    if post.status != "active":
        return 0
    now = now or now_utc()
    added = 0
    zones = groups.target_timezones(**post_targets(post))
    for tz in zones:
        if db.session.scalar(
            select(PostOccurrence.id)
            .where(
                PostOccurrence.post_id == post.id, PostOccurrence.timezone == tz, PostOccurrence.state == "scheduled"
            )
            .limit(1)
        ):
            continue
        last = db.session.scalar(
            select(func.max(PostOccurrence.due_at)).where(
                PostOccurrence.post_id == post.id, PostOccurrence.timezone == tz
            )
        )
        fire = schedule.next_fire(
            post.schedule, tz, after=last or post.starts_at - timedelta(microseconds=1), not_before=post.starts_at
        )
        if fire is None:
            continue
        stmt = (
            upsert_insert(PostOccurrence)
            .values(
                post_id=post.id,
                timezone=tz,
                slot=schedule.slot_of(fire, tz),
                due_at=fire,
                state="scheduled",
                post_version=post.version,
                deliveries_count=0,
                error="",
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
        added += db.session.execute(stmt).rowcount
    # With groups to post into and nothing left to plan in any of their zones, every schedule has ended.
    if zones and not db.session.scalar(
        select(PostOccurrence.id).where(PostOccurrence.post_id == post.id, PostOccurrence.state == "scheduled").limit(1)
    ):
        post.status = "finished"
    return added


def plan_all() -> int:
    """Plan every active post (picks up new time zones of filter targets and ended schedules)."""
    active = list(db.session.scalars(select(Post).where(Post.status == "active").order_by(Post.id)))
    return sum(plan_post(post) for post in active)


def drop_future_occurrences(post_id: int, *, state: str | None = None) -> None:
    """Edit, pause and cancel reach only occurrences that have not gone out yet."""
    future = (PostOccurrence.post_id == post_id) & (PostOccurrence.state == "scheduled")
    if state is None:
        db.session.query(PostOccurrence).filter(future).delete(synchronize_session=False)
    else:
        db.session.execute(update(PostOccurrence).where(future).values(state=state))
