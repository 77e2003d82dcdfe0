"""Members: joining by invite, leaving, roles inside a group, the host's member list, members' demands."""

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.accounts import service as accounts
from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Forbidden, Invalid, NotFound
from app.core.pagination import keyset_page
from app.groups import service
from app.groups.models import ChatGroup, GroupMember, GroupMemberRole, MemberEvent


def join_group(*, user_id: int, scene: str) -> tuple[ChatGroup, GroupMember]:
    """Join the group whose invite carries `scene` (joining again after leaving rejoins; twice is a no-op)."""
    group = db.session.scalar(select(ChatGroup).where(ChatGroup.invite_scene == scene.strip()))
    if group is None or not group.is_active:
        raise NotFound("No active group has this invite.", code="invite_not_found")
    now = now_utc()
    member = db.session.scalar(
        select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.user_id == user_id)
    )
    if member is None:
        member = GroupMember(group_id=group.id, user_id=user_id, joined_at=now, fan_level="casual", fan_level_at=now)
        try:
            with db.session.begin_nested():
                db.session.add(member)
        except IntegrityError:
            member = db.session.scalar(
                select(GroupMember).where(GroupMember.group_id == group.id, GroupMember.user_id == user_id)
            )
            return group, member
        joined = True
    else:
        joined = (
            db.session.execute(
                update(GroupMember)
                .where(GroupMember.id == member.id, GroupMember.left_at.is_not(None))
                .values(left_at=None, joined_at=now)
            ).rowcount
            == 1
        )
    if joined:
        db.session.execute(
            update(ChatGroup).where(ChatGroup.id == group.id).values(member_count=ChatGroup.member_count + 1)
        )
        db.session.add(MemberEvent(group_id=group.id, user_id=user_id, kind="joined", detail="", occurred_at=now))
    db.session.flush()
    db.session.refresh(group)
    db.session.refresh(member)
    return group, member


def leave_group(*, user_id: int, group_id: int) -> None:
    """Leave a group; roles held in it are dropped."""
    left = db.session.execute(
        update(GroupMember)
        .where(GroupMember.group_id == group_id, GroupMember.user_id == user_id, GroupMember.left_at.is_(None))
        .values(left_at=now_utc())
    ).rowcount
    if not left:
        raise NotFound("You are not a member of this group.", code="not_a_member")
    db.session.execute(
        update(ChatGroup)
        .where(ChatGroup.id == group_id, ChatGroup.member_count > 0)
        .values(member_count=ChatGroup.member_count - 1)
    )
    db.session.query(GroupMemberRole).filter_by(group_id=group_id, user_id=user_id).delete()


def member_roles(*, group_id: int, user_ids: list[int]) -> dict[int, list[str]]:
    """The group roles each of `user_ids` holds in the group."""
    found: dict[int, list[str]] = {u: [] for u in user_ids}
    if user_ids:
        for row in db.session.execute(
            select(GroupMemberRole.user_id, GroupMemberRole.role)
            .where(GroupMemberRole.group_id == group_id, GroupMemberRole.user_id.in_(user_ids))
            .order_by(GroupMemberRole.role)
        ):
            found[row.user_id].append(row.role)
    return found


def grant_group_role(*, group_id: int, user_id: int, role: str, actor: Actor) -> list[str]:
    """Give a member a role inside the group (granting a held role changes nothing)."""
    service.get_group(group_id=group_id, actor=actor)
    if service.active_member(group_id=group_id, user_id=user_id) is None:
        raise NotFound("The user is not a member of this group.", code="not_a_member")
    if db.session.get(GroupMemberRole, (group_id, user_id, role)) is None:
        try:
            with db.session.begin_nested():
                db.session.add(
                    GroupMemberRole(
                        group_id=group_id, user_id=user_id, role=role, granted_at=now_utc(), granted_by_id=actor.id
                    )
                )
        except IntegrityError:
            pass
    return member_roles(group_id=group_id, user_ids=[user_id])[user_id]


def revoke_group_role(*, group_id: int, user_id: int, role: str, actor: Actor) -> list[str]:
    """Take a role away from a member."""
    service.get_group(group_id=group_id, actor=actor)
    db.session.query(GroupMemberRole).filter_by(group_id=group_id, user_id=user_id, role=role).delete()
    return member_roles(group_id=group_id, user_ids=[user_id])[user_id]


def list_members(
    *, group_id: int, actor: Actor, level: str | None, cursor: str | None, limit: int
) -> tuple[list[tuple[GroupMember, str]], dict[int, list[str]], str | None]:
    """Current members of a group (optionally at one fan level), with nicknames and roles, newest first.

    A page costs two queries whatever its size: the members with their nicknames, and their roles.
    """
    service.get_group(group_id=group_id, actor=actor)
    stmt = select(GroupMember, accounts.nickname_of(GroupMember.user_id)).where(
        GroupMember.group_id == group_id, GroupMember.left_at.is_(None)
    )
    if level is not None:
        stmt = stmt.where(GroupMember.fan_level == level)
    rows, next_cursor = keyset_page(
        stmt,
        columns=[GroupMember.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda row: (row[0].id,),
        session=db.session,
    )
    roles = member_roles(group_id=group_id, user_ids=[member.user_id for member, _ in rows])
    return [(member, nickname) for member, nickname in rows], roles, next_cursor


def post_demand(*, group_id: int, user_id: int, text: str) -> MemberEvent:
    """A member asks a question or makes a request in the group (a demand event for the fan ladder)."""
    if db.session.get(ChatGroup, group_id) is None:
        raise NotFound("No such group.", code="group_not_found")
    if service.active_member(group_id=group_id, user_id=user_id) is None:
        raise Forbidden("Only members of the group can post demands in it.", code="not_a_member")
    if not text.strip():
        raise Invalid("The demand text cannot be blank.", code="demand_blank", errors={"text": ["Blank."]})
    event = MemberEvent(group_id=group_id, user_id=user_id, kind="demand", detail=text.strip(), occurred_at=now_utc())
    db.session.add(event)
    db.session.flush()
    return event
