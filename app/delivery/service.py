"""Posts: create, edit, pause, resume, cancel; delivery logs, figures and operator retries (previews: flows)."""

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from app.affiliate import service as affiliate
from app.core.access import Actor
from app.core.clock import DEFAULT_ZONE_NAME, now_utc
from app.core.db import db
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.pagination import keyset_page
from app.coupons import service as coupons
from app.delivery import kinds, planning, schedule
from app.delivery.channels import CUSTOMER_GROUP
from app.delivery.models import DELIVERY_STATES, Delivery, Post, PostOccurrence, PostTarget, SandboxMessage
from app.groups import service as groups
from app.orders import service as orders

CAP_HORIZON = timedelta(days=31)
RETRY_MAX = 10_000


def _post(*, post_id: int, actor: Actor) -> Post:
    post = db.session.get(Post, post_id)
    if post is None:
        raise NotFound("No such post.", code="post_not_found")
    if not actor.operator and post.author_id != actor.id:
        raise Forbidden("This post belongs to someone else.", code="post_not_yours")
    return post


def _resolve_targets(*, targets: dict, actor: Actor) -> tuple[str, list[int] | None, dict | None]:
    if targets.get("group_ids"):
        groups.assert_groups_postable(group_ids=targets["group_ids"], actor=actor)
        return "groups", sorted(set(targets["group_ids"])), None
    if targets.get("filter") is not None:
        return "filter", None, targets["filter"]
    raise Invalid("Name the target groups or a filter.", code="targets_missing", errors={"targets": ["Missing."]})


def _check_schedule(*, post: Post, zones: list[str], now: datetime) -> None:
    for tz in zones or [DEFAULT_ZONE_NAME]:
        schedule.trigger(post.schedule, tz)
    if zones and all(schedule.next_fire(post.schedule, tz, after=now, not_before=now) is None for tz in zones):
        raise Invalid(
            "The schedule has no time left to fire in the target groups' zones.",
            code="schedule_in_past",
            errors={"schedule": ["In the past."]},
        )


def _check_customer_groups(*, post: Post, targeted: list) -> None:
    """wecom_customer_group: one mass message per group per local day, and cards need a picture."""
    mine = {g.id: g.timezone for g in targeted if g.channel == CUSTOMER_GROUP}
    if not mine:
        return
    if kinds.of(post.kind).is_card and not post.content.get("pic_media_id"):
        raise Invalid(
            "Cards to WeCom customer groups need pic_media_id.",
            code="pic_media_id_required",
            errors={"content": {"pic_media_id": ["Required for customer groups."]}},
        )
    my_days = {}
    for tz in set(mine.values()):
        days = schedule.local_days(post.schedule, tz, start=post.starts_at, horizon=CAP_HORIZON)
        if len(days) != len(set(days)):
            raise Conflict(
                "WeCom customer groups take one mass message a day; this schedule fires more often.",
                code="daily_mass_message_cap",
                errors={"group_ids": sorted(mine)},
            )
        my_days[tz] = set(days)
    others = db.session.scalars(select(Post).where(Post.status == "active", Post.id != (post.id or 0)))
    for other in others:
        shared = [g for g in groups.target_groups(**planning.post_targets(other)) if g.id in mine]
        for tz in {g.timezone for g in shared}:
            start = max(other.starts_at, post.starts_at)
            clash = my_days[tz] & set(schedule.local_days(other.schedule, tz, start=start, horizon=CAP_HORIZON))
            if clash:
                raise Conflict(
                    "WeCom customer groups take one mass message a day; another post already uses these days.",
                    code="daily_mass_message_cap",
                    errors={
                        "post_id": other.id,
                        "group_ids": sorted(g.id for g in shared if g.timezone == tz),
                        "dates": sorted(d.isoformat() for d in clash)[:10],
                    },
                )


def _check_and_plan(post: Post, *, now: datetime) -> None:
    """Check the flushed post against its sources, schedule and channel rules, then plan its next occurrences."""
    post.product_id = kinds.of(post.kind).check(post.content, author=planning.post_author(post))
    db.session.flush()
    targeted = groups.target_groups(**planning.post_targets(post))
    _check_schedule(post=post, zones=sorted({g.timezone for g in targeted}), now=now)
    _check_customer_groups(post=post, targeted=targeted)
    planning.plan_post(post, now=now)


def create_post(*, actor: Actor, kind: str, content: dict, targets: dict, schedule_spec: dict) -> Post:
    """Schedule a post into groups (hosts: only their own)."""
    now = now_utc()
    clean = kinds.of(kind).validate(content)
    mode, group_ids, group_filter = _resolve_targets(targets=targets, actor=actor)
    post = Post(
        author_id=actor.id,
        kind=kind,
        content=clean,
        target_mode=mode,
        target_filter=group_filter,
        schedule=schedule_spec,
        starts_at=now,
        status="active",
        version=1,
        created_at=now,
        updated_at=now,
    )
    db.session.add(post)
    db.session.flush()
    for group_id in group_ids or []:
        db.session.add(PostTarget(post_id=post.id, group_id=group_id))
    _check_and_plan(post, now=now)
    return post


def get_post(*, post_id: int, actor: Actor) -> Post:
    """One post the actor wrote (operators: any)."""
    return _post(post_id=post_id, actor=actor)


def post_group_ids(*, post_id: int) -> list[int]:
    """The explicit target groups of a post."""
    return list(
        db.session.scalars(
            select(PostTarget.group_id).where(PostTarget.post_id == post_id).order_by(PostTarget.group_id)
        )
    )


def post_reached_group(*, post_id: int, group_id: int) -> bool:
    """Whether a post went (or is going) into a group: a delivery of it there that is not a skip or a miss."""
    return (
        db.session.scalar(
            select(Delivery.id)
            .where(
                Delivery.post_id == post_id, Delivery.group_id == group_id, Delivery.state.not_in(("skipped", "missed"))
            )
            .limit(1)
        )
        is not None
    )


def list_posts(*, actor: Actor, status: str | None, cursor: str | None, limit: int) -> tuple[list[Post], str | None]:
    """Posts the actor wrote (operators: all), newest first."""
    stmt = select(Post)
    if not actor.operator:
        stmt = stmt.where(Post.author_id == actor.id)
    if status:
        stmt = stmt.where(Post.status == status)
    return keyset_page(
        stmt, columns=[Post.id], kinds=[int], cursor=cursor, limit=limit, key_of=lambda p: (p.id,), session=db.session
    )


def update_post(*, post_id: int, actor: Actor, changes: dict) -> Post:
    """Edit content, targets or schedule; occurrences already gone out keep what they sent."""
    post = _post(post_id=post_id, actor=actor)
    if post.status in ("cancelled", "finished"):
        raise Conflict(f"A {post.status} post cannot be edited.", code="post_closed")
    now = now_utc()
    if "content" in changes:
        post.content = kinds.of(post.kind).validate(changes["content"])
    if "targets" in changes:
        mode, group_ids, group_filter = _resolve_targets(targets=changes["targets"], actor=actor)
        db.session.query(PostTarget).filter_by(post_id=post.id).delete()
        post.target_mode, post.target_filter = mode, group_filter
        for group_id in group_ids or []:
            db.session.add(PostTarget(post_id=post.id, group_id=group_id))
    if "schedule" in changes:
        post.schedule = changes["schedule"]
    post.version += 1
    post.starts_at = now
    post.updated_at = now
    planning.drop_future_occurrences(post.id)
    _check_and_plan(post, now=now)
    return post


def pause_post(*, post_id: int, actor: Actor) -> Post:
    """Stop planning occurrences; what already went out is untouched."""
    post = _post(post_id=post_id, actor=actor)
    if post.status != "active":
        raise Conflict(f"Only an active post can be paused (this one is {post.status}).", code="post_not_active")
    post.status, post.updated_at = "paused", now_utc()
    planning.drop_future_occurrences(post.id)
    return post


def resume_post(*, post_id: int, actor: Actor) -> Post:
    """Plan again from now on (occurrences that fell in the pause are skipped, not caught up)."""
    post = _post(post_id=post_id, actor=actor)
    if post.status != "paused":
        raise Conflict(f"Only a paused post can be resumed (this one is {post.status}).", code="post_not_paused")
    now = now_utc()
    post.status, post.starts_at, post.updated_at = "active", now, now
    _check_customer_groups(post=post, targeted=groups.target_groups(**planning.post_targets(post)))
    planning.plan_post(post, now=now)
    return post


def cancel_post(*, post_id: int, actor: Actor) -> Post:
    """Cancel every future occurrence for good."""
    post = _post(post_id=post_id, actor=actor)
    if post.status in ("cancelled", "finished"):
        raise Conflict(f"The post is already {post.status}.", code="post_closed")
    post.status, post.updated_at = "cancelled", now_utc()
    planning.drop_future_occurrences(post.id, state="cancelled")
    return post


def next_occurrence_at(*, post_id: int, timezone: str) -> datetime | None:
    """When the post is next planned to go out in a time zone."""
    return db.session.scalar(
        select(func.min(PostOccurrence.due_at)).where(
            PostOccurrence.post_id == post_id, PostOccurrence.timezone == timezone, PostOccurrence.state == "scheduled"
        )
    )


def list_occurrences(*, post_id: int, actor: Actor) -> list[PostOccurrence]:
    """A post's occurrences, latest first (the planned next ones included)."""
    _post(post_id=post_id, actor=actor)
    return list(
        db.session.scalars(
            select(PostOccurrence)
            .where(PostOccurrence.post_id == post_id)
            .order_by(PostOccurrence.due_at.desc(), PostOccurrence.id.desc())
            .limit(200)
        )
    )


def _delivery_page(stmt, *, cursor: str | None, limit: int):
    return keyset_page(
        stmt,
        columns=[Delivery.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda d: (d.id,),
        session=db.session,
    )


def post_deliveries(
    *, post_id: int, actor: Actor, group_id: int | None, state: str | None, cursor: str | None, limit: int
) -> tuple[list[Delivery], str | None]:
    """The delivery log of a post, newest first, with failure reasons."""
    _post(post_id=post_id, actor=actor)
    stmt = select(Delivery).where(Delivery.post_id == post_id)
    if group_id is not None:
        stmt = stmt.where(Delivery.group_id == group_id)
    if state:
        stmt = stmt.where(Delivery.state == state)
    return _delivery_page(stmt, cursor=cursor, limit=limit)


def group_deliveries(
    *, group_id: int, actor: Actor, post_id: int | None, state: str | None, cursor: str | None, limit: int
) -> tuple[list[Delivery], str | None]:
    """The delivery log of a group, newest first."""
    groups.hosted_group(group_id=group_id, actor=actor)
    stmt = select(Delivery).where(Delivery.group_id == group_id)
    if post_id is not None:
        stmt = stmt.where(Delivery.post_id == post_id)
    if state:
        stmt = stmt.where(Delivery.state == state)
    return _delivery_page(stmt, cursor=cursor, limit=limit)


def sandbox_messages(
    *, group_id: int, actor: Actor, cursor: str | None, limit: int
) -> tuple[list[SandboxMessage], str | None]:
    """What a sandbox-channel group would have seen, newest first."""
    groups.hosted_group(group_id=group_id, actor=actor)
    stmt = select(SandboxMessage).where(SandboxMessage.group_id == group_id)
    return keyset_page(
        stmt,
        columns=[SandboxMessage.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda m: (m.id,),
        session=db.session,
    )


def retry_deliveries(
    *, delivery_ids: list[int] | None, post_id: int | None, group_id: int | None, states: list[str]
) -> int:
    """Operators send failed, dead or unknown deliveries again (unknown ones may then arrive twice: their call)."""
    if not delivery_ids and post_id is None and group_id is None:
        raise Invalid(
            "Name deliveries, a post or a group.",
            code="retry_scope_missing",
            errors={"delivery_ids": ["Give delivery_ids, post_id or group_id."]},
        )
    now = now_utc()
    chosen = select(Delivery.id).where(Delivery.state.in_(states))
    if delivery_ids:
        chosen = chosen.where(Delivery.id.in_(delivery_ids))
    if post_id is not None:
        chosen = chosen.where(Delivery.post_id == post_id)
    if group_id is not None:
        chosen = chosen.where(Delivery.group_id == group_id)
    chosen = chosen.limit(RETRY_MAX)
    retried = db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(chosen.scalar_subquery()), Delivery.state.in_(states))
        .values(
            state="pending",
            attempts=0,
            manual_retries=Delivery.manual_retries + 1,
            queued_at=None,
            available_at=now,
            error_code=None,
            error_message="",
            finished_at=None,
            updated_at=now,
        )
    ).rowcount
    return retried


def group_figures(*, group_id: int, actor: Actor, since: datetime | None = None, until: datetime | None = None) -> dict:
    """Per-group figures for the host: deliveries by state, posts reaching it, members and their fan levels,
    and (in [since, until), all time by default) clicks, coupon claims, attributed orders and GMV."""
    group = groups.hosted_group(group_id=group_id, actor=actor)
    window = {"group_id": group_id, "since": since, "until": until}
    commerce = {
        "clicks": affiliate.group_click_count(**window),
        "claims": coupons.group_claim_count(**window),
        **orders.group_order_figures(**window),
    }
    by_state = Counter(
        dict(
            db.session.execute(
                select(Delivery.state, func.count()).where(Delivery.group_id == group_id).group_by(Delivery.state)
            ).all()
        )
    )
    posts = db.session.scalar(select(func.count(func.distinct(Delivery.post_id))).where(Delivery.group_id == group_id))
    last_sent = db.session.scalar(
        select(func.max(Delivery.finished_at)).where(Delivery.group_id == group_id, Delivery.state == "sent")
    )
    return {
        "group_id": group.id,
        "member_count": group.member_count,
        "fans": groups.fan_counts(group_id=group.id, actor=actor),
        "posts": int(posts or 0),
        "deliveries": {state: int(by_state.get(state, 0)) for state in DELIVERY_STATES},
        "last_sent_at": last_sent,
        "since": since,
        "until": until,
        **commerce,
    }
