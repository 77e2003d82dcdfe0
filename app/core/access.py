"""Who may call each route. Every view declares a rule; a view without one is refused (deny by default)."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, current_app, g, request

from app.core.errors import ApiError, Forbidden, Unauthenticated

ROLES = ("mom", "host", "partner", "operator")
GRANTABLE_ROLES = ("host", "partner", "operator")


@dataclass(frozen=True)
class AccessRule:
    kind: str  # "public", "user" or "roles"
    roles: tuple[str, ...] = ()

    def describe(self) -> str:
        return self.kind if self.kind != "roles" else "roles:" + ",".join(self.roles)


def _declare(rule: AccessRule) -> Callable:
    def decorator(view: Callable) -> Callable:
        view._access_rule = rule
        return view

    return decorator


public = _declare(AccessRule("public"))
authenticated = _declare(AccessRule("user"))


def fenced_session(view: Callable) -> Callable:
    """Let an `authenticated` view have its one Redis script check the caller's session, saving a round trip.

    The session is then taken from memory with a fence (accounts.SessionFence), or, when this process has
    not seen it yet, only the token's user id is known (`caller_id()`; `g.user` stays None). The view passes
    `session_fence()` to its script, which must check it before anything else, and on a failed check calls
    `confirm_session()` (401 if the session no longer holds) and runs again unfenced. Until its script has
    checked the fence the view may change nothing and answer nothing that a caller without a session could
    not learn; `confirm_session()` gives it `g.user` when it needs more than the id.
    """
    view._fenced_session = True
    return view


def roles(*names: str) -> Callable:
    """Allow only users holding at least one of `names` (operators pass every role check)."""
    unknown = set(names) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    return _declare(AccessRule("roles", tuple(names)))


@dataclass(frozen=True)
class Actor:
    """Who is calling a use case: owners act on their own things, operators on everything."""

    id: int
    operator: bool


def current_actor() -> Actor:
    """The caller of this request as an Actor."""
    return Actor(id=require_user().id, operator="operator" in g.roles)


def rule_of(view: Callable) -> AccessRule | None:
    return getattr(view, "_access_rule", None)


def current_user():
    """The logged-in user of this request, or None."""
    return g.get("user")


def caller_id() -> int:
    """The caller's user id; in a fenced view, also before its script has checked an unseen session."""
    user = g.get("user")
    return user.id if user is not None else g.unseen_user_id


def require_user():
    user = g.get("user")
    if user is None:
        raise Unauthenticated()
    return user


class SessionUnverified(Exception):
    """A view's Redis script found the session fence broken: `confirm_session()`, then run it unfenced."""


def session_fence():
    """The fence the view's Redis script must check for this request's session (None: already verified)."""
    return g.get("session_fence")


def confirm_session() -> None:
    """Verify a fenced session against Redis and the database now (sets `g.user`); 401 when it no longer holds."""
    if g.get("session_fence") is not None:
        _load_user()


def _load_user(*, fenced: bool = False) -> None:
    g.user, g.auth_session, g.roles, g.session_fence, g.unseen_user_id = None, None, frozenset(), None, None
    header = request.headers.get("Authorization", "")
    if not header:
        return
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <token>'.", code="invalid_authorization_header")
    found = current_app.extensions["authenticate"](token=token.strip(), fenced=fenced)
    if found is None:
        raise Unauthenticated("The session token is unknown, expired or revoked.", code="invalid_token")
    if found.user is None:  # a session this process has not seen: only its user id and fence are known
        g.unseen_user_id, g.session_fence = found.user_id, found.fence
        return
    g.user, g.auth_session, g.roles, g.session_fence = found.user, found.session, found.roles, found.fence


def _enforce() -> None:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None:
        return
    rule = rule_of(view)
    if rule is None:
        raise ApiError("This route declares no access rule.", status=403, code="route_without_access_rule")
    if rule.kind == "public":
        # Tests run requests inside one long app context, where `g` outlives a request: reset it.
        g.user, g.auth_session, g.roles, g.session_fence, g.unseen_user_id = None, None, frozenset(), None, None
        if request.headers.get("Authorization"):
            _load_user()
        return
    # Only plain `authenticated` views may defer the check: a role rule is decided here, on verified roles.
    _load_user(fenced=rule.kind == "user" and getattr(view, "_fenced_session", False))
    if g.user is None and g.unseen_user_id is None:
        raise Unauthenticated()
    if rule.kind == "roles" and "operator" not in g.roles and not (set(rule.roles) & (g.roles | {"mom"})):
        raise Forbidden(
            "Your roles do not allow this.", code="role_required", errors={"required_roles": list(rule.roles)}
        )


class Authenticator(Protocol):
    """Resolves a bearer token (the accounts domain's `authenticate`, given to `init_app` by the factory).

    It answers None for a token that does not hold, else an object with `user` (None for a session this
    process has not seen, which a fenced view verifies itself), `session`, `roles`, `fence` and, when
    `user` is None, `user_id`.
    """

    def __call__(self, *, token: str, fenced: bool = False) -> Any: ...


def init_app(app: Flask, *, authenticate: Authenticator) -> None:
    """Check every request's access rule, resolving bearer tokens with `authenticate`."""
    app.extensions["authenticate"] = authenticate
    app.before_request(_enforce)


def declare_public_endpoints(app: Flask, endpoints: list[str]) -> None:
    """Mark views registered by libraries (static files, OpenAPI docs) as public, explicitly."""
    for endpoint in endpoints:
        view = app.view_functions.get(endpoint)
        if view is not None and rule_of(view) is None:
            app.view_functions[endpoint] = public(functools.wraps(view)(lambda *a, _view=view, **kw: _view(*a, **kw)))
