"""Demo posts: a one-off welcome a minute from now and a daily parenting tip into host1's groups, and the
partner's toothbrushing drip (the content demo's course) into host2's toddler group on Mondays, Wednesdays and
Fridays.

The groups use the sandbox channel, so `GET /api/v1/groups/<id>/sandbox-messages` shows what they got.
"""

from datetime import timedelta

from sqlalchemy import select

from app.accounts import service as accounts
from app.content import service as content
from app.core.access import Actor
from app.core.clock import DEFAULT_ZONE, now_utc
from app.core.db import db, transactional
from app.delivery import service
from app.delivery.models import Post
from app.groups import service as groups

SEED_ORDER = 45  # after the groups (20) and the content demo's course (40)
DRIP_TOPIC = "刷牙"


def _hosted_group_ids(actor: Actor) -> list[int]:
    return [g.id for g in groups.list_groups(actor=actor, cursor=None, limit=10)[0]]


def _has_posts(author_id: int, kind: str | None = None) -> bool:
    stmt = select(Post.id).where(Post.author_id == author_id)
    if kind is not None:
        stmt = stmt.where(Post.kind == kind)
    return db.session.scalar(stmt.limit(1)) is not None


def _welcome_and_daily_tip(host: Actor) -> None:
    group_ids = _hosted_group_ids(host)
    if not group_ids or _has_posts(host.id):
        return
    soon = (now_utc() + timedelta(minutes=1)).astimezone(DEFAULT_ZONE).strftime("%Y-%m-%dT%H:%M")
    service.create_post(
        actor=host,
        kind="text",
        content={"text": "欢迎加入家长群！每晚 20:00 推送一条育儿小知识。"},
        targets={"group_ids": group_ids},
        schedule_spec={"kind": "once", "at": soon},
    )
    service.create_post(
        actor=host,
        kind="markdown",
        content={"markdown": "**今日育儿小知识**\n> 宝宝不爱刷牙？先让孩子自己挑牙刷，再用儿歌计时两分钟。"},
        targets={"group_ids": group_ids},
        schedule_spec={"kind": "daily", "time": "20:00"},
    )


def _toothbrushing_drip(host: Actor) -> None:
    group_ids = _hosted_group_ids(host)
    drip = {"topic": DRIP_TOPIC}
    if not group_ids or _has_posts(host.id, "knowledge_point") or not content.is_drip_source(content=drip):
        return
    service.create_post(
        actor=host,
        kind="knowledge_point",
        content=drip,
        targets={"group_ids": group_ids},
        schedule_spec={"kind": "weekly", "time": "08:00", "weekdays": [1, 3, 5]},
    )


@transactional
def seed() -> list[str]:
    """Schedule the demo posts (each part skipped when its host already has such posts)."""
    for ref, part in (("host1", _welcome_and_daily_tip), ("host2", _toothbrushing_drip)):
        host = accounts.find_user(ref=ref)
        if host is not None:
            part(Actor(id=host.id, operator=False))
    return []
