"""Groups use cases: institutions and classes, chat groups and their credentials, members, roles, invites."""

import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import Select, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import among, db
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.pagination import keyset_page
from app.groups import credentials as creds
from app.groups.models import (
    EVENT_KINDS,
    ChatGroup,
    GroupMember,
    GroupMemberRole,
    Institution,
    InstitutionClass,
    MemberEvent,
)

SCENE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
DEMAND_TEXT_MAX = 500


@dataclass(frozen=True)
class DeliveryTarget:
    """What a delivery worker needs to know about one group (credentials in clear: never returned)."""

    id: int
    name: str
    host_id: int
    channel: str
    timezone: str
    credentials: dict[str, str]


@dataclass(frozen=True)
class MemberEventIn:
    """One member event for `record_member_events`; a `ref` makes it idempotent."""

    group_id: int
    user_id: int
    kind: str
    occurred_at: datetime
    ref: str | None = None
    detail: str = ""


def check_timezone(name: str) -> str:
    """Return the IANA zone name or fail with 422 `unknown_timezone`."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(
            f"'{name}' is not an IANA time zone.", code="unknown_timezone", errors={"timezone": ["Unknown time zone."]}
        ) from None
    return name


# -- institutions and classes ------------------------------------------------------------------------------


def _institution(*, institution_id: int, actor: Actor) -> Institution:
    institution = db.session.get(Institution, institution_id)
    if institution is None:
        raise NotFound("No such institution.", code="institution_not_found")
    if not actor.operator and institution.owner_id != actor.id:
        raise Forbidden("This institution is managed by someone else.", code="institution_not_yours")
    return institution


def create_institution(*, actor: Actor, name: str, kind: str, city: str) -> Institution:
    """Register an institution, managed by the actor."""
    institution = Institution(name=name.strip(), kind=kind, city=city.strip(), owner_id=actor.id, created_at=now_utc())
    db.session.add(institution)
    db.session.commit()
    return institution


def get_institution(*, institution_id: int, actor: Actor) -> Institution:
    """One institution the actor manages."""
    return _institution(institution_id=institution_id, actor=actor)


def update_institution(*, institution_id: int, actor: Actor, changes: dict) -> Institution:
    """Rename or re-describe an institution."""
    institution = _institution(institution_id=institution_id, actor=actor)
    for field in ("name", "kind", "city"):
        if field in changes:
            setattr(institution, field, changes[field].strip() if field != "kind" else changes[field])
    db.session.commit()
    return institution


def list_institutions(*, actor: Actor, cursor: str | None, limit: int) -> tuple[list[Institution], str | None]:
    """Institutions the actor manages (operators: all), newest first."""
    stmt = select(Institution)
    if not actor.operator:
        stmt = stmt.where(Institution.owner_id == actor.id)
    return keyset_page(
        stmt,
        columns=[Institution.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda i: (i.id,),
        session=db.session,
    )


def create_class(*, institution_id: int, actor: Actor, name: str, age_band: str) -> InstitutionClass:
    """Add a class to an institution; names are unique within it."""
    _institution(institution_id=institution_id, actor=actor)
    klass = InstitutionClass(institution_id=institution_id, name=name.strip(), age_band=age_band, created_at=now_utc())
    try:
        with db.session.begin_nested():
            db.session.add(klass)
    except IntegrityError:
        raise Conflict("The institution already has a class of this name.", code="class_name_taken") from None
    db.session.commit()
    return klass


def list_classes(*, institution_id: int, actor: Actor) -> list[InstitutionClass]:
    """The classes of an institution the actor manages."""
    _institution(institution_id=institution_id, actor=actor)
    return list(
        db.session.scalars(
            select(InstitutionClass)
            .where(InstitutionClass.institution_id == institution_id)
            .order_by(InstitutionClass.id)
        )
    )


# -- groups ------------------------------------------------------------------------------------------------


def _group(*, group_id: int, actor: Actor) -> ChatGroup:
    group = db.session.get(ChatGroup, group_id)
    if group is None:
        raise NotFound("No such group.", code="group_not_found")
    if not actor.operator and group.host_id != actor.id:
        raise Forbidden("This group is hosted by someone else.", code="group_not_yours")
    return group


def _check_placement(*, actor: Actor, institution_id: int | None, class_id: int | None) -> None:
    if institution_id is not None:
        _institution(institution_id=institution_id, actor=actor)
    if class_id is not None:
        klass = db.session.get(InstitutionClass, class_id)
        if klass is None or klass.institution_id != institution_id:
            raise Invalid(
                "The class must belong to the group's institution.",
                code="class_not_in_institution",
                errors={"class_id": ["Not a class of the institution."]},
            )


def _new_scene() -> str:
    return "g" + "".join(secrets.choice(SCENE_ALPHABET) for _ in range(11))


def create_group(
    *,
    actor: Actor,
    name: str,
    channel: str,
    credentials: dict | None,
    age_band: str,
    tags: list[str],
    timezone: str,
    institution_id: int | None = None,
    class_id: int | None = None,
    host_id: int | None = None,
) -> ChatGroup:
    """Register a group; hosts register their own, operators may name another host."""
    if host_id is not None and host_id != actor.id and not actor.operator:
        raise Forbidden("Only operators register groups for other hosts.", code="host_assignment_forbidden")
    if host_id is not None and host_id != actor.id:
        from app.accounts import service as accounts

        if "host" not in accounts.roles_of(accounts.get_user(user_id=host_id)):
            raise Invalid(
                "The group's host must hold the host role.", code="not_a_host", errors={"host_id": ["Not a host."]}
            )
    _check_placement(actor=actor, institution_id=institution_id, class_id=class_id)
    secret = creds.encrypt(creds.validate(channel, credentials))
    now = now_utc()
    group = ChatGroup(
        name=name.strip(),
        host_id=host_id or actor.id,
        channel=channel,
        credentials_encrypted=secret,
        age_band=age_band,
        tags=sorted(set(tags)),
        timezone=check_timezone(timezone),
        institution_id=institution_id,
        class_id=class_id,
        member_count=0,
        invite_scene=_new_scene(),
        is_active=True,
        created_at=now,
        updated_at=now,
    )
    db.session.add(group)
    db.session.commit()
    return group


def get_group(*, group_id: int, actor: Actor) -> ChatGroup:
    """One group the actor hosts (operators: any)."""
    return _group(group_id=group_id, actor=actor)


def update_group(*, group_id: int, actor: Actor, changes: dict) -> ChatGroup:
    """Change a group's settings; new credentials replace the old ones (channel changes need them)."""
    group = _group(group_id=group_id, actor=actor)
    channel = changes.get("channel", group.channel)
    if "credentials" in changes or channel != group.channel:
        group.credentials_encrypted = creds.encrypt(creds.validate(channel, changes.get("credentials")))
        group.channel = channel
    if "institution_id" in changes or "class_id" in changes:
        institution_id = changes.get("institution_id", group.institution_id)
        class_id = changes.get("class_id", group.class_id if institution_id == group.institution_id else None)
        _check_placement(actor=actor, institution_id=institution_id, class_id=class_id)
        group.institution_id, group.class_id = institution_id, class_id
    if "timezone" in changes:
        group.timezone = check_timezone(changes["timezone"])
    if "tags" in changes:
        group.tags = sorted(set(changes["tags"]))
    for field in ("name", "age_band", "is_active"):
        if field in changes:
            setattr(group, field, changes[field].strip() if field == "name" else changes[field])
    group.updated_at = now_utc()
    db.session.commit()
    return group


def list_groups(
    *, actor: Actor, cursor: str | None, limit: int, institution_id: int | None = None, channel: str | None = None
) -> tuple[list[ChatGroup], str | None]:
    """Groups the actor hosts (operators: all), newest first."""
    stmt = select(ChatGroup)
    if not actor.operator:
        stmt = stmt.where(ChatGroup.host_id == actor.id)
    if institution_id is not None:
        stmt = stmt.where(ChatGroup.institution_id == institution_id)
    if channel is not None:
        stmt = stmt.where(ChatGroup.channel == channel)
    return keyset_page(
        stmt,
        columns=[ChatGroup.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda g: (g.id,),
        session=db.session,
    )


def group_invite(*, group_id: int, actor: Actor) -> dict:
    """The group's invite scene and a mini-program code image that carries it."""
    import base64

    from app.wechat import service as wechat

    group = _group(group_id=group_id, actor=actor)
    page = current_app.config["MINIPROGRAM_HOME_PAGE"]
    image = wechat.miniprogram_code_png(scene=group.invite_scene, page=page)
    return {
        "group_id": group.id,
        "scene": group.invite_scene,
        "page": page,
        "image": "data:image/png;base64," + base64.b64encode(image).decode(),
    }


# -- members -----------------------------------------------------------------------------------------------


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
    db.session.commit()
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
    db.session.commit()


def my_groups(*, user_id: int) -> list[tuple[ChatGroup, GroupMember]]:
    """The groups the user is a member of."""
    rows = db.session.execute(
        select(ChatGroup, GroupMember)
        .join(GroupMember, GroupMember.group_id == ChatGroup.id)
        .where(GroupMember.user_id == user_id, GroupMember.left_at.is_(None))
        .order_by(GroupMember.id)
    )
    return [(g, m) for g, m in rows]


def _active_member(group_id: int, user_id: int) -> GroupMember | None:
    return db.session.scalar(
        select(GroupMember).where(
            GroupMember.group_id == group_id, GroupMember.user_id == user_id, GroupMember.left_at.is_(None)
        )
    )


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
    _group(group_id=group_id, actor=actor)
    if _active_member(group_id, user_id) is None:
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
    db.session.commit()
    return member_roles(group_id=group_id, user_ids=[user_id])[user_id]


def revoke_group_role(*, group_id: int, user_id: int, role: str, actor: Actor) -> list[str]:
    """Take a role away from a member."""
    _group(group_id=group_id, actor=actor)
    db.session.query(GroupMemberRole).filter_by(group_id=group_id, user_id=user_id, role=role).delete()
    db.session.commit()
    return member_roles(group_id=group_id, user_ids=[user_id])[user_id]


def list_members(
    *, group_id: int, actor: Actor, level: str | None, cursor: str | None, limit: int
) -> tuple[list[tuple[GroupMember, str]], dict[int, list[str]], str | None]:
    """Current members of a group (optionally at one fan level), with nicknames and roles, newest first."""
    from app.accounts import service as accounts

    _group(group_id=group_id, actor=actor)
    stmt = select(GroupMember).where(GroupMember.group_id == group_id, GroupMember.left_at.is_(None))
    if level is not None:
        stmt = stmt.where(GroupMember.fan_level == level)
    members, next_cursor = keyset_page(
        stmt,
        columns=[GroupMember.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda m: (m.id,),
        session=db.session,
    )
    names = {m.user_id: accounts.get_user(user_id=m.user_id).nickname for m in members}
    roles = member_roles(group_id=group_id, user_ids=[m.user_id for m in members])
    return [(m, names[m.user_id]) for m in members], roles, next_cursor


# -- member events and the fan ladder ----------------------------------------------------------------------


def record_member_event(
    *,
    group_id: int,
    user_id: int,
    kind: str,
    occurred_at: datetime | None = None,
    ref: str | None = None,
    detail: str = "",
    commit: bool = True,
) -> bool:
    """Record what a member did in a group (other domains call this: clicks, views, purchases).

    Returns False when the user is not a current member or the same (kind, ref) was recorded before.
    With commit=False the event joins the caller's transaction.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown member event kind {kind!r}")
    if _active_member(group_id, user_id) is None:
        return False
    event = MemberEvent(
        group_id=group_id,
        user_id=user_id,
        kind=kind,
        ref=ref,
        detail=detail[:DEMAND_TEXT_MAX],
        occurred_at=occurred_at or now_utc(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(event)
    except IntegrityError:
        return False
    if commit:
        db.session.commit()
    return True


def record_member_events(*, events: list[MemberEventIn]) -> int:
    """Record many member events in one statement, joining the caller's transaction (bulk callers: click batches).

    Events of users who are not current members, and (kind, ref) pairs recorded before, are skipped;
    returns how many were new.
    """
    unknown = {e.kind for e in events} - set(EVENT_KINDS)
    if unknown:
        raise ValueError(f"unknown member event kinds {sorted(unknown)}")
    members = current_members(pairs={(e.group_id, e.user_id) for e in events})
    rows = [
        {
            "group_id": e.group_id,
            "user_id": e.user_id,
            "kind": e.kind,
            "ref": e.ref,
            "detail": e.detail[:DEMAND_TEXT_MAX],
            "occurred_at": e.occurred_at,
        }
        for e in events
        if (e.group_id, e.user_id) in members
    ]
    if not rows:
        return 0
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(MemberEvent).on_conflict_do_nothing(
        index_elements=["group_id", "user_id", "kind", "ref"]
    )
    return len(db.session.execute(statement.returning(MemberEvent.id), rows).all())


def current_members(*, pairs: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which (group_id, user_id) pairs are current memberships: one query, so bulk callers skip non-members."""
    if not pairs:
        return set()
    group_ids, user_ids = {g for g, _ in pairs}, {u for _, u in pairs}
    rows = db.session.execute(
        select(GroupMember.group_id, GroupMember.user_id).where(
            among(GroupMember.group_id, group_ids), among(GroupMember.user_id, user_ids), GroupMember.left_at.is_(None)
        )
    )
    return {(r.group_id, r.user_id) for r in rows} & pairs


def post_demand(*, group_id: int, user_id: int, text: str) -> MemberEvent:
    """A member asks a question or makes a request in the group (a demand event for the fan ladder)."""
    if db.session.get(ChatGroup, group_id) is None:
        raise NotFound("No such group.", code="group_not_found")
    if _active_member(group_id, user_id) is None:
        raise Forbidden("Only members of the group can post demands in it.", code="not_a_member")
    if not text.strip():
        raise Invalid("The demand text cannot be blank.", code="demand_blank", errors={"text": ["Blank."]})
    event = MemberEvent(group_id=group_id, user_id=user_id, kind="demand", detail=text.strip(), occurred_at=now_utc())
    db.session.add(event)
    db.session.commit()
    return event


# -- what the delivery domain needs ------------------------------------------------------------------------


def assert_groups_postable(*, group_ids: list[int], actor: Actor) -> list[ChatGroup]:
    """Every group exists, and a host may post into each (their own); 404/403 otherwise."""
    groups = {g.id: g for g in db.session.scalars(select(ChatGroup).where(ChatGroup.id.in_(set(group_ids))))}
    missing = sorted(set(group_ids) - set(groups))
    if missing:
        raise NotFound("Some groups do not exist.", code="group_not_found", errors={"group_ids": missing})
    foreign = sorted(g.id for g in groups.values() if not actor.operator and g.host_id != actor.id)
    if foreign:
        raise Forbidden(
            "You can only post into groups you host.", code="group_not_yours", errors={"group_ids": foreign}
        )
    return [groups[i] for i in group_ids]


def target_groups_select(
    *, group_ids: list[int] | None, group_filter: dict | None, host_id: int | None, timezone: str | None = None
) -> Select:
    """A SELECT of (id, channel, timezone) of the active groups a post targets, resolved now.

    `host_id` restricts to one host's groups (posts by hosts); `timezone` to the groups of one zone.
    """
    stmt = select(ChatGroup.id, ChatGroup.channel, ChatGroup.timezone).where(ChatGroup.is_active.is_(True))
    if group_ids is not None:
        stmt = stmt.where(ChatGroup.id.in_(group_ids) if group_ids else literal(False))
    if group_filter:
        if group_filter.get("institution_id") is not None:
            stmt = stmt.where(ChatGroup.institution_id == group_filter["institution_id"])
        if group_filter.get("class_id") is not None:
            stmt = stmt.where(ChatGroup.class_id == group_filter["class_id"])
        if group_filter.get("age_bands"):
            stmt = stmt.where(ChatGroup.age_band.in_(group_filter["age_bands"]))
        if group_filter.get("channels"):
            stmt = stmt.where(ChatGroup.channel.in_(group_filter["channels"]))
    if host_id is not None:
        stmt = stmt.where(ChatGroup.host_id == host_id)
    if timezone is not None:
        stmt = stmt.where(ChatGroup.timezone == timezone)
    return stmt


def target_groups(
    *, group_ids: list[int] | None, group_filter: dict | None, host_id: int | None, timezone: str | None = None
) -> list:
    """Rows (id, channel, timezone) of the active groups a post targets now (tags are matched here: JSON
    lists are not portable SQL)."""
    stmt = target_groups_select(group_ids=group_ids, group_filter=group_filter, host_id=host_id, timezone=timezone)
    wanted = set((group_filter or {}).get("tags") or [])
    rows = db.session.execute(stmt.add_columns(ChatGroup.tags).order_by(ChatGroup.id))
    return [r for r in rows if wanted <= set(r.tags or [])]


def target_timezones(*, group_ids: list[int] | None, group_filter: dict | None, host_id: int | None) -> list[str]:
    """The distinct time zones of the groups a post targets now."""
    stmt = target_groups_select(group_ids=group_ids, group_filter=group_filter, host_id=host_id)
    return sorted(set(db.session.scalars(stmt.with_only_columns(ChatGroup.timezone).distinct())))


def delivery_targets(*, group_ids: list[int]) -> dict[int, DeliveryTarget]:
    """Channel, zone and clear credentials of each group (delivery workers only)."""
    rows = db.session.execute(
        select(
            ChatGroup.id,
            ChatGroup.name,
            ChatGroup.host_id,
            ChatGroup.channel,
            ChatGroup.timezone,
            ChatGroup.credentials_encrypted,
        ).where(ChatGroup.id.in_(group_ids))
    )
    return {
        r.id: DeliveryTarget(
            id=r.id,
            name=r.name,
            host_id=r.host_id,
            channel=r.channel,
            timezone=r.timezone,
            credentials=creds.decrypt(r.credentials_encrypted),
        )
        for r in rows
    }


def group_brief(*, group_id: int) -> ChatGroup:
    """A group by id (404 if missing), for other domains' read-only use."""
    group = db.session.get(ChatGroup, group_id)
    if group is None:
        raise NotFound("No such group.", code="group_not_found")
    return group


def sharing_host_id(*, group_id: int, user_id: int) -> int:
    """The host of a group the user belongs to (member or host), who earns the host share on her links for it."""
    host_id = db.session.scalar(select(ChatGroup.host_id).where(ChatGroup.id == group_id))
    if host_id is None:
        raise NotFound("No such group.", code="group_not_found")
    # Anyone else could mint links paying this host (and counting as this group's) from outside it.
    if user_id != host_id and _active_member(group_id, user_id) is None:
        raise Forbidden("Only members of the group can share links for it.", code="not_a_member")
    return host_id
