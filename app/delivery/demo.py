"""Demo posts: a daily parenting tip into the class group and a one-off welcome a minute from now.

Both groups use the sandbox channel, so `GET /api/v1/groups/<id>/sandbox-messages` shows what they got.
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.accounts import service as accounts
from app.core.clock import now_utc
from app.core.db import db
from app.delivery import service
from app.delivery.models import Post
from app.groups import service as groups

SEED_ORDER = 30


def seed() -> list[str]:
    """Schedule the demo posts (skipped when host1 already has posts)."""
    host1 = accounts.find_user(ref="host1")
    if host1 is None or db.session.scalar(select(Post.id).where(Post.author_id == host1.id).limit(1)):
        return []
    actor = groups.Actor(id=host1.id, operator=False)
    group_ids = [g.id for g in groups.list_groups(actor=actor, cursor=None, limit=10)[0]]
    if not group_ids:
        return []
    soon = (now_utc() + timedelta(minutes=1)).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M")
    service.create_post(
        actor=actor,
        kind="text",
        content={"text": "欢迎加入家长群！每晚 20:00 推送一条育儿小知识。"},
        targets={"group_ids": group_ids},
        schedule_spec={"kind": "once", "at": soon},
    )
    service.create_post(
        actor=actor,
        kind="markdown",
        content={"markdown": "**今日育儿小知识**\n> 宝宝不爱刷牙？先让孩子自己挑牙刷，再用儿歌计时两分钟。"},
        targets={"group_ids": group_ids},
        schedule_spec={"kind": "daily", "time": "20:00"},
    )
    return []
