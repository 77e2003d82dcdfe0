"""Accounts use cases: WeChat login, sessions, the referral tree and roles."""

import base64
import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ColumnElement, ScalarSelect, and_, delete, func, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app.accounts.models import AuthSession, User, UserRole
from app.core.access import GRANTABLE_ROLES
from app.core.clock import now_utc
from app.core.db import after_commit, among, db
from app.core.errors import Conflict, Invalid, NotFound
from app.core.jobs import job
from app.core.locks import serialize_transaction
from app.core.lru import ProcessCache
from app.core.pagination import keyset_page
from app.core.redis import get_redis, get_request_redis, key
from app.wechat import service as wechat

INVITE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
INVITE_CODE_LENGTH = 8
INVITE_IMAGE_TTL_SECONDS = 24 * 3600
AUTH_CACHE_SECONDS = 300
PARSED_SESSIONS_LIMIT = 20_000
# Per process: token hash -> (cached blob, its generation, the parsed session, the same with its fence); saves
# re-parsing the blob and lets fenced authentication skip the round trip. Never trusted alone (SessionFence).
_parsed_sessions = ProcessCache(PARSED_SESSIONS_LIMIT)


class ReferralStatus:
    NONE = "none"  # no invite code sent
    BOUND = "bound"  # bound to the inviter by this login
    ALREADY_BOUND = "already_bound"  # bound earlier; the code was ignored
    UNKNOWN_CODE = "unknown_code"
    SELF_INVITE = "self_invite"
    CYCLE = "cycle"  # the inviter is this user's own descendant


@dataclass(frozen=True)
class CurrentUser:
    """The caller as their session knows them: plain values cached with it (a view that changes the user loads the row)."""

    id: int
    openid: str
    nickname: str
    invite_code: str
    inviter_id: int | None
    bound_at: datetime | None
    created_at: datetime
    roles: frozenset[str]


@dataclass(frozen=True)
class SessionInfo:
    id: int
    user_id: int
    expires_at: datetime


@dataclass(frozen=True)
class SessionFence:
    """What a Redis script must check before acting for a session this process has not checked in Redis.

    The session counts as verified exactly when a fresh MGET would accept it: its cache entry still
    exists and the user's generation still is the one it was cached under (logout, expiry of the entry,
    role or profile changes, a flushed Redis all break one of the two).
    - A session this process parsed before carries that `generation`; its expiry was checked here.
    - An unseen one (`generation` None) is checked from the entry itself: it must parse, belong to the
      token's user, carry the current generation and not have expired (`expires_ms` against the script's
      now). The script then hands the entry to `remember_verified_session`, so the next tap is a known one.
    """

    token_hash: str
    entry_key: str
    generation_key: str
    generation: int | None


@dataclass(frozen=True)
class Authenticated:
    user: CurrentUser
    session: SessionInfo
    roles: frozenset[str]
    fence: SessionFence | None = None  # None: verified against Redis (or the database) by this request


@dataclass(frozen=True)
class UnseenSession:
    """A bearer token this process has not verified yet: only its user (the token's prefix) and its fence."""

    user_id: int
    fence: SessionFence
    user: None = None  # read like an Authenticated: no user, session or roles until the fence is checked
    session: None = None
    roles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str
    expires_at: datetime
    created: bool
    referral_status: str


@dataclass(frozen=True)
class TeamPage:
    level_1_count: int
    level_2_count: int
    members: list[tuple[User, int]]
    next_cursor: str | None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_CODE_LENGTH))


def roles_of(user: "User | CurrentUser") -> frozenset[str]:
    """Every user is a mom; other roles are granted."""
    if isinstance(user, CurrentUser):
        return user.roles
    return frozenset({"mom", *(r.role for r in user.roles)})


def get_user(*, user_id: int) -> User:
    """Load a user or fail with 404."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return user


def find_user(*, ref: str) -> User | None:
    """Find a user by id, openid or invite code (operators' command line)."""
    clauses = [User.openid == ref, User.invite_code == ref.upper()]
    if ref.isdigit():
        clauses.append(User.id == int(ref))
    return db.session.scalar(select(User).where(or_(*clauses)).limit(1))


def _get_or_create_user(*, openid: str, unionid: str | None, nickname: str = "") -> tuple[User, bool]:
    user = db.session.scalar(select(User).where(User.openid == openid))
    if user is not None:
        return user, False
    for _ in range(5):
        candidate = User(
            openid=openid, unionid=unionid, nickname=nickname, invite_code=_new_invite_code(), created_at=now_utc()
        )
        try:
            with db.session.begin_nested():
                db.session.add(candidate)
            return candidate, True
        except IntegrityError:
            existing = db.session.scalar(select(User).where(User.openid == openid))
            if existing is not None:
                return existing, False
    raise Conflict("Could not allocate an invite code; try again.", code="invite_code_exhausted")


def _is_descendant(*, ancestor_id: int, candidate_id: int) -> bool:
    """True if `candidate_id` sits anywhere below `ancestor_id` in the referral tree (or is it)."""
    chain = select(User.id, User.inviter_id).where(User.id == candidate_id).cte("chain", recursive=True)
    chain = chain.union(select(User.id, User.inviter_id).join(chain, User.id == chain.c.inviter_id))
    return (
        db.session.scalar(select(literal(1)).select_from(chain).where(chain.c.id == ancestor_id).limit(1)) is not None
    )


def _bind_referral(*, user: User, invite_code: str | None) -> str:
    if not invite_code:
        return ReferralStatus.ALREADY_BOUND if user.inviter_id else ReferralStatus.NONE
    if user.inviter_id is not None:
        return ReferralStatus.ALREADY_BOUND
    inviter = db.session.scalar(select(User).where(User.invite_code == invite_code.strip().upper()))
    if inviter is None:
        return ReferralStatus.UNKNOWN_CODE
    if inviter.id == user.id:
        return ReferralStatus.SELF_INVITE
    # Bindings are serialised so that two users binding to each other at once cannot close a cycle.
    serialize_transaction("referral-binding")
    if _is_descendant(ancestor_id=user.id, candidate_id=inviter.id):
        return ReferralStatus.CYCLE
    bound = db.session.execute(
        update(User)
        .where(User.id == user.id, User.inviter_id.is_(None))
        .values(inviter_id=inviter.id, bound_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(user)
    return ReferralStatus.BOUND if bound else ReferralStatus.ALREADY_BOUND


def _open_session(*, user: User) -> tuple[str, AuthSession]:
    # The user id prefix lets authentication fetch the cached session and the user's generation at once.
    token = f"{user.id}.{secrets.token_urlsafe(32)}"
    session = AuthSession(
        user_id=user.id,
        token_hash=_token_hash(token),
        created_at=now_utc(),
        expires_at=now_utc() + timedelta(seconds=current_app.config["SESSION_TTL_SECONDS"]),
    )
    db.session.add(session)
    return token, session


def login(*, code: str, invite_code: str | None = None) -> LoginResult:
    """Log in with a wx.login() code; the first valid invite code binds the user to the inviter for good.

    The new session goes into the session cache at once, so the first request with it needs no query: in a
    flash drop the moms who just opened the mini-program tap at once, and each first tap would otherwise
    look its session up in the database at the drop's busiest moment.
    """
    identity = wechat.code_to_session(code=code)
    user, created = _get_or_create_user(openid=identity.openid, unionid=identity.unionid)
    referral_status = _bind_referral(user=user, invite_code=invite_code)
    user.last_login_at = now_utc()
    token, session = _open_session(user=user)
    db.session.flush()
    # Its values as written: after the commit the row would be read back just to cache what we already know.
    opened = SessionInfo(id=session.id, user_id=session.user_id, expires_at=session.expires_at)
    redis = get_redis()
    generation_before = int(redis.get(_generation_key(user.id)) or 0)

    def cache_once_committed() -> None:
        generation = redis.incr(_generation_key(user.id))  # every cached session of the user is re-read once
        # Only when no other change to the user bumped the generation since it was read: then the user and
        # roles cached here (read after the commit) are at least as new as that generation says.
        if generation == generation_before + 1:
            _cache_session(_token_hash(token), generation=generation, session=opened, user=user)

    after_commit(cache_once_committed)
    return LoginResult(
        user=user, token=token, expires_at=opened.expires_at, created=created, referral_status=referral_status
    )


def _invalidate_auth_cache(*, user_id: int) -> None:
    """Once the change commits, bump the user's generation, so every cached session of theirs is re-read once."""
    after_commit(lambda: get_redis().incr(_generation_key(user_id)))


def _session_cache_key(token_hash: str) -> str:
    return key("auth", "session", token_hash)


def _generation_key(user_id: int) -> str:
    return key("auth", "generation", user_id)


def _moment(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _blob(*, generation: int, session: AuthSession | SessionInfo, user: User, roles: frozenset[str]) -> str:
    """The cached form of a live session: plain values, so reading it back builds no ORM object."""
    return json.dumps(
        {
            "generation": generation,
            "session": {
                "id": session.id,
                "user_id": session.user_id,
                "expires_at": _moment(session.expires_at),
                "expires_ms": int(session.expires_at.timestamp() * 1000),
            },
            "principal": {
                "id": user.id,
                "openid": user.openid,
                "nickname": user.nickname,
                "invite_code": user.invite_code,
                "inviter_id": user.inviter_id,
                "bound_at": _moment(user.bound_at),
                "created_at": _moment(user.created_at),
            },
            "roles": sorted(roles),
        }
    )


def _parsed(raw: bytes) -> tuple[int, Authenticated] | None:
    """(generation, authentication) from a cached blob; None for a blob in another format."""
    blob = json.loads(raw)
    if "principal" not in blob:
        return None
    principal, session, roles = blob["principal"], blob["session"], frozenset(blob["roles"])
    user = CurrentUser(
        id=principal["id"],
        openid=principal["openid"],
        nickname=principal["nickname"],
        invite_code=principal["invite_code"],
        inviter_id=principal["inviter_id"],
        bound_at=_parse_moment(principal["bound_at"]),
        created_at=_parse_moment(principal["created_at"]),
        roles=roles,
    )
    return blob["generation"], Authenticated(
        user=user,
        session=SessionInfo(
            id=session["id"], user_id=session["user_id"], expires_at=_parse_moment(session["expires_at"])
        ),
        roles=roles,
    )


def _remember_parsed(token_hash: str, raw: bytes, generation: int, found: Authenticated) -> None:
    fence = SessionFence(
        token_hash=token_hash,
        entry_key=_session_cache_key(token_hash),
        generation_key=_generation_key(found.session.user_id),
        generation=generation,
    )
    _parsed_sessions.put(token_hash, (raw, generation, found, dataclasses.replace(found, fence=fence)))


def _live(found: Authenticated, user_id: int) -> bool:
    return found.session.user_id == user_id and found.session.expires_at > now_utc()


def _cached_authentication(token_hash: str, user_id: int) -> Authenticated | None:
    raw, generation = get_request_redis().mget(_session_cache_key(token_hash), _generation_key(user_id))
    if raw is None:
        return None
    known = _parsed_sessions.get(token_hash)
    if known is not None and known[0] == raw:
        _, blob_generation, found, _ = known
    else:
        parsed = _parsed(raw)
        if parsed is None:
            return None
        blob_generation, found = parsed
        _remember_parsed(token_hash, raw, blob_generation, found)
    if blob_generation != int(generation or 0) or not _live(found, user_id):
        return None
    return found


def _fenced_authentication(token_hash: str, user_id: int) -> Authenticated | UnseenSession | None:
    """This process's copy of a session (or, unseen, just its fence), to be checked by the view's one Redis script."""
    known = _parsed_sessions.get(token_hash)
    if known is None:
        return UnseenSession(
            user_id=user_id,
            fence=SessionFence(
                token_hash=token_hash,
                entry_key=_session_cache_key(token_hash),
                generation_key=_generation_key(user_id),
                generation=None,
            ),
        )
    return known[3] if _live(known[3], user_id) else None


def remember_verified_session(*, fence: SessionFence, raw: bytes) -> None:
    """Keep a session entry a Redis script verified for an unseen fence (see SessionFence) in this process."""
    parsed = _parsed(raw)
    if parsed is not None:
        _remember_parsed(fence.token_hash, raw, *parsed)


def authenticate(*, token: str, fenced: bool = False) -> Authenticated | UnseenSession | None:
    """Resolve a bearer token to its live session and user (cached in Redis, checked against the user's generation).

    A cached session costs one Redis round trip (the session and the user's generation in one MGET) and no
    query; every change to the user or their sessions bumps the generation, so it takes effect at once.
    With `fenced`, authentication costs no round trip here: a session this process has verified before
    comes with a `fence`, an unseen one as an UnseenSession; the caller's own Redis script must check the
    fence before anything else (see `SessionFence`).
    """
    user_part, _, secret = token.partition(".")
    if not user_part.isdigit() or not secret:
        return None
    user_id, token_hash = int(user_part), _token_hash(token)
    found = (_fenced_authentication(token_hash, user_id) if fenced else None) or _cached_authentication(
        token_hash, user_id
    )
    if found is not None:
        return found
    # Read the generation before the database: a change committed meanwhile bumps it past what we cache.
    generation = int(get_redis().get(_generation_key(user_id)) or 0)
    row = db.session.execute(
        select(AuthSession, User)
        .join(User, User.id == AuthSession.user_id)
        .where(
            AuthSession.token_hash == token_hash,
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now_utc(),
        )
    ).first()
    if row is None:
        return None
    session, user = row
    return _cache_session(token_hash, generation=generation, session=session, user=user)


def _cache_session(
    token_hash: str, *, generation: int, session: AuthSession | SessionInfo, user: User
) -> Authenticated:
    """Put a live session in the Redis cache under `generation` (read before the user was) and in this process."""
    raw = _blob(generation=generation, session=session, user=user, roles=roles_of(user)).encode()
    get_redis().set(_session_cache_key(token_hash), raw, ex=AUTH_CACHE_SECONDS)
    generation, found = _parsed(raw)
    _remember_parsed(token_hash, raw, generation, found)
    return found


def logout(*, session_id: int, user_id: int) -> None:
    """Revoke one session; its token stops working at once."""
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now_utc())
    )
    _invalidate_auth_cache(user_id=user_id)


@job
def purge_expired_sessions() -> int:
    """Delete sessions that expired or were revoked more than a day ago (a scheduled job)."""
    cutoff = now_utc() - timedelta(days=1)
    return db.session.execute(
        delete(AuthSession).where(or_(AuthSession.expires_at < cutoff, AuthSession.revoked_at < cutoff))
    ).rowcount


def invite_card(*, invite_code: str) -> dict:
    """The user's invite code with a mini-program code image whose scene is that code (cached a day)."""
    cache_key = key("invite-image", invite_code)
    redis = get_redis()
    image = redis.get(cache_key)
    page = current_app.config["MINIPROGRAM_HOME_PAGE"]
    if image is None:
        image = wechat.miniprogram_code_png(scene=invite_code, page=page)
        redis.set(cache_key, image, ex=INVITE_IMAGE_TTL_SECONDS)
    return {
        "invite_code": invite_code,
        "scene": invite_code,
        "page": page,
        "image": "data:image/png;base64," + base64.b64encode(image).decode(),
    }


def team(*, user_id: int, level: int, cursor: str | None, limit: int) -> TeamPage:
    """The user's level-1 (invited directly) or level-2 (invited by those) members, newest binding first."""
    direct = aliased(User)
    level_1_count = db.session.scalar(select(func.count()).select_from(User).where(User.inviter_id == user_id))
    level_2_count = db.session.scalar(
        select(func.count())
        .select_from(User)
        .join(direct, User.inviter_id == direct.id)
        .where(direct.inviter_id == user_id)
    )
    if level == 1:
        stmt = select(User).where(User.inviter_id == user_id)
    else:
        stmt = select(User).join(direct, and_(User.inviter_id == direct.id, direct.inviter_id == user_id))
    members, next_cursor = keyset_page(
        stmt,
        columns=[User.bound_at, User.id],
        kinds=[datetime, int],
        cursor=cursor,
        limit=limit,
        key_of=lambda u: (u.bound_at, u.id),
        session=db.session,
    )
    return TeamPage(
        level_1_count=level_1_count,
        level_2_count=level_2_count,
        members=[(m, level) for m in members],
        next_cursor=next_cursor,
    )


def grant_role(*, user_id: int, role: str, granted_by_id: int | None) -> User:
    """Grant a role (idempotent: granting a held role changes nothing)."""
    if role not in GRANTABLE_ROLES:
        raise Invalid(
            f"'{role}' cannot be granted; grantable roles are {', '.join(GRANTABLE_ROLES)}.", code="role_not_grantable"
        )
    user = get_user(user_id=user_id)
    if role not in roles_of(user):
        user.roles.append(UserRole(user_id=user.id, role=role, granted_at=now_utc(), granted_by_id=granted_by_id))
    db.session.flush()
    _invalidate_auth_cache(user_id=user.id)
    return user


def revoke_role(*, user_id: int, role: str, revoked_by_id: int | None) -> User:
    """Revoke a role; operators cannot revoke their own operator role (no lock-out)."""
    if role not in GRANTABLE_ROLES:
        raise Invalid(f"'{role}' cannot be revoked.", code="role_not_grantable")
    user = get_user(user_id=user_id)
    if role == "operator" and revoked_by_id == user_id:
        raise Conflict("Operators cannot revoke their own operator role.", code="cannot_revoke_own_operator")
    user.roles = [r for r in user.roles if r.role != role]
    db.session.flush()
    _invalidate_auth_cache(user_id=user.id)
    return user


def ensure_user(*, openid: str, nickname: str, inviter: User | None = None, roles: tuple[str, ...] = ()) -> User:
    """Create a user as a first login would (demo data and tests); existing users are returned as they are."""
    user, created = _get_or_create_user(openid=openid, unionid=None, nickname=nickname)
    if created:
        if inviter is not None:
            _bind_referral(user=user, invite_code=inviter.invite_code)
        for role in roles:
            user.roles.append(UserRole(user_id=user.id, role=role, granted_at=now_utc()))
    db.session.flush()
    _invalidate_auth_cache(user_id=user.id)
    return user


def rename(*, user_id: int, nickname: str) -> User:
    """Set the display name the user chose in the mini-program."""
    if not nickname.strip():
        raise Invalid("The nickname cannot be blank.", code="nickname_blank", errors={"nickname": ["Blank."]})
    user = get_user(user_id=user_id)
    user.nickname = nickname.strip()
    db.session.flush()
    _invalidate_auth_cache(user_id=user.id)
    return user


def user_ids_by_openid(*, openids: list[str]) -> dict[str, int]:
    """Map openids to user ids (order ingestion resolves buyers in bulk); unknown openids are left out."""
    wanted = set(openids)
    if not wanted:
        return {}
    return dict(db.session.execute(select(User.openid, User.id).where(among(User.openid, wanted))).all())


def inviter_ids(*, user_ids: list[int]) -> dict[int, int]:
    """Map user ids to their bound inviter's id (users without an inviter are left out)."""
    wanted = set(user_ids)
    if not wanted:
        return {}
    return dict(
        db.session.execute(
            select(User.id, User.inviter_id).where(among(User.id, wanted), User.inviter_id.is_not(None))
        ).all()
    )


def existing_user_ids(*, user_ids: list[int]) -> set[int]:
    """The subset of `user_ids` that are users."""
    wanted = set(user_ids)
    if not wanted:
        return set()
    return set(db.session.scalars(select(User.id).where(among(User.id, wanted))))


def nickname_of(user_id: ColumnElement[int]) -> ScalarSelect[str]:
    """The nickname of the user `user_id` names, as a column other domains select beside their rows (no query each)."""
    return select(User.nickname).where(User.id == user_id).scalar_subquery()
