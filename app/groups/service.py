"""Groups use cases: institutions and classes, chat groups and their credentials, members, roles, invites."""

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import Select, func, literal, select
from sqlalchemy.exc import IntegrityError

from app.accounts import service as accounts
from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import among, db, upsert_insert
from app.core.errors import Forbidden, Invalid, NotFound
from app.core.pagination import keyset_page
from app.groups import credentials as creds
from app.groups import institutions
from app.groups.models import AGE_BANDS as AGE_BANDS  # other domains' schemas offer these as choices
from app.groups.models import CHANNELS as CHANNELS
from app.groups.models import (
    EVENT_KINDS,
    FAN_LEVELS,
    ChatGroup,
    GroupMember,
    MemberEvent,
)
from app.wechat import service as wechat

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
class GroupBrief:
    """What other domains read of a group (no credentials, no ORM row)."""

    id: int
    name: str
    host_id: int
    channel: str
    timezone: str
    age_band: str
    member_count: int


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


# -- groups ------------------------------------------------------------------------------------------------


def _group(*, group_id: int, actor: Actor) -> ChatGroup:
    group = db.session.get(ChatGroup, group_id)
    if group is None:
        raise NotFound("No such group.", code="group_not_found")
    if not actor.operator and group.host_id != actor.id:
        raise Forbidden("This group is hosted by someone else.", code="group_not_yours")
    return group


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
    if (
        host_id is not None
        and host_id != actor.id
        and "host" not in accounts.roles_of(accounts.get_user(user_id=host_id))
    ):
        raise Invalid(
            "The group's host must hold the host role.", code="not_a_host", errors={"host_id": ["Not a host."]}
        )
    institutions.check_placement(actor=actor, institution_id=institution_id, class_id=class_id)
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
    db.session.flush()
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
        institutions.check_placement(actor=actor, institution_id=institution_id, class_id=class_id)
        group.institution_id, group.class_id = institution_id, class_id
    if "timezone" in changes:
        group.timezone = check_timezone(changes["timezone"])
    if "tags" in changes:
        group.tags = sorted(set(changes["tags"]))
    for field in ("name", "age_band", "is_active"):
        if field in changes:
            setattr(group, field, changes[field].strip() if field == "name" else changes[field])
    group.updated_at = now_utc()
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
    group = _group(group_id=group_id, actor=actor)
    page = current_app.config["MINIPROGRAM_HOME_PAGE"]
    image = wechat.miniprogram_code_png(scene=group.invite_scene, page=page)
    return {
        "group_id": group.id,
        "scene": group.invite_scene,
        "page": page,
        "image": "data:image/png;base64," + base64.b64encode(image).decode(),
    }


# -- members as other domains see them ----------------------------------------------------------------------


def my_groups(*, user_id: int) -> list[tuple[ChatGroup, GroupMember]]:
    """The groups the user is a member of."""
    rows = db.session.execute(
        select(ChatGroup, GroupMember)
        .join(GroupMember, GroupMember.group_id == ChatGroup.id)
        .where(GroupMember.user_id == user_id, GroupMember.left_at.is_(None))
        .order_by(GroupMember.id)
    )
    return [(g, m) for g, m in rows]


def active_member(*, group_id: int, user_id: int) -> GroupMember | None:
    """The user's current membership of the group, if any."""
    return db.session.scalar(
        select(GroupMember).where(
            GroupMember.group_id == group_id, GroupMember.user_id == user_id, GroupMember.left_at.is_(None)
        )
    )


def member_group(*, group_id: int, user_id: int) -> GroupBrief | None:
    """The group, when the user is a current member of it."""
    return group_brief(group_id=group_id) if active_member(group_id=group_id, user_id=user_id) else None


# -- member events and the fan ladder ----------------------------------------------------------------------


def record_member_event(
    *,
    group_id: int,
    user_id: int,
    kind: str,
    occurred_at: datetime | None = None,
    ref: str | None = None,
    detail: str = "",
) -> bool:
    """Record what a member did in a group (other domains call this: clicks, views, purchases).

    Returns False when the user is not a current member or the same (kind, ref) was recorded before.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown member event kind {kind!r}")
    if active_member(group_id=group_id, user_id=user_id) is None:
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
    statement = upsert_insert(MemberEvent).on_conflict_do_nothing(index_elements=["group_id", "user_id", "kind", "ref"])
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


# -- what the delivery domain needs ------------------------------------------------------------------------


def assert_groups_postable(*, group_ids: list[int], actor: Actor) -> list[GroupBrief]:
    """Every group exists, and a host may post into each (their own); 404/403 otherwise."""
    groups = group_briefs(group_ids=group_ids)
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


def _brief(group) -> GroupBrief:
    return GroupBrief(
        id=group.id,
        name=group.name,
        host_id=group.host_id,
        channel=group.channel,
        timezone=group.timezone,
        age_band=group.age_band,
        member_count=group.member_count,
    )


def group_briefs(*, group_ids: list[int]) -> dict[int, GroupBrief]:
    """The groups of `group_ids` that exist, by id (one query)."""
    wanted = set(group_ids)
    if not wanted:
        return {}
    rows = db.session.execute(
        select(
            ChatGroup.id,
            ChatGroup.name,
            ChatGroup.host_id,
            ChatGroup.channel,
            ChatGroup.timezone,
            ChatGroup.age_band,
            ChatGroup.member_count,
        ).where(among(ChatGroup.id, wanted))
    )
    return {row.id: _brief(row) for row in rows}


def group_brief(*, group_id: int) -> GroupBrief:
    """A group by id (404 if missing), for other domains' read-only use."""
    found = group_briefs(group_ids=[group_id]).get(group_id)
    if found is None:
        raise NotFound("No such group.", code="group_not_found")
    return found


def hosted_group(*, group_id: int, actor: Actor) -> GroupBrief:
    """A group the actor hosts (operators: any); 404/403 otherwise."""
    return _brief(_group(group_id=group_id, actor=actor))


def sharing_host_id(*, group_id: int, user_id: int) -> int:
    """The host of a group the user belongs to (member or host), who earns the host share on her links for it."""
    host_id = db.session.scalar(select(ChatGroup.host_id).where(ChatGroup.id == group_id))
    if host_id is None:
        raise NotFound("No such group.", code="group_not_found")
    # Anyone else could mint links paying this host (and counting as this group's) from outside it.
    if user_id != host_id and active_member(group_id=group_id, user_id=user_id) is None:
        raise Forbidden("Only members of the group can share links for it.", code="not_a_member")
    return host_id


def fan_counts(*, group_id: int, actor: Actor) -> dict[str, int]:
    """How many current members stand at each level of the fan ladder of a group the actor hosts."""
    _group(group_id=group_id, actor=actor)
    counts = dict(
        db.session.execute(
            select(GroupMember.fan_level, func.count())
            .where(GroupMember.group_id == group_id, GroupMember.left_at.is_(None))
            .group_by(GroupMember.fan_level)
        ).all()
    )
    return {level: int(counts.get(level, 0)) for level in FAN_LEVELS}
