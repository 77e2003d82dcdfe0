"""Demo groups: a kindergarten with a class group, a parenting group, moms in them and some ladder events."""

from sqlalchemy import select

from app.accounts import service as accounts
from app.core.clock import DEFAULT_ZONE_NAME
from app.core.db import db, transactional
from app.groups import institutions, members, service
from app.groups.models import ChatGroup

SEED_ORDER = 20


@transactional
def seed() -> list[str]:
    """Create the demo institution, groups and memberships (skipped when the groups exist)."""
    host1 = accounts.find_user(ref="host1")
    host2 = accounts.find_user(ref="host2")
    if (
        host1 is None
        or host2 is None
        or db.session.scalar(select(ChatGroup.id).where(ChatGroup.host_id == host1.id).limit(1))
    ):
        return []
    h1 = service.Actor(id=host1.id, operator=False)
    kindergarten = institutions.create_institution(actor=h1, name="阳光幼儿园", kind="kindergarten", city="上海")
    klass = institutions.create_class(institution_id=kindergarten.id, actor=h1, name="大一班", age_band="3-6y")
    class_group = service.create_group(
        actor=h1,
        name="阳光幼儿园大一班家长群",
        channel="sandbox",
        credentials=None,
        age_band="3-6y",
        tags=["kindergarten", "shanghai"],
        timezone=DEFAULT_ZONE_NAME,
        institution_id=kindergarten.id,
        class_id=klass.id,
    )
    baby_group = service.create_group(
        actor=service.Actor(id=host2.id, operator=False),
        name="宝宝成长群",
        channel="sandbox",
        credentials=None,
        age_band="1-3y",
        tags=["toddler"],
        timezone=DEFAULT_ZONE_NAME,
    )
    for openid in ("mom01", "mom02", "mom03", "mom04", "mom05"):
        members.join_group(user_id=accounts.find_user(ref=openid).id, scene=class_group.invite_scene)
    for openid in ("mom06", "mom07", "mom08", "mom09", "mom10"):
        members.join_group(user_id=accounts.find_user(ref=openid).id, scene=baby_group.invite_scene)
    members.grant_group_role(
        group_id=class_group.id, user_id=accounts.find_user(ref="mom01").id, role="teacher", actor=h1
    )
    members.post_demand(
        group_id=class_group.id, user_id=accounts.find_user(ref="mom02").id, text="宝宝不爱刷牙怎么办？"
    )
    return []
