"""Who may call each route. Every view declares a rule; a view without one is refused (deny by default)."""
import functools
from dataclasses import dataclass
from typing import Callable

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


def require_user():
    user = g.get("user")
    if user is None:
        raise Unauthenticated()
    return user


def _load_user() -> None:
    from app.accounts import service as accounts

    g.user, g.auth_session, g.roles = None, None, frozenset()
    header = request.headers.get("Authorization", "")
    if not header:
        return
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Use 'Authorization: Bearer <token>'.", code="invalid_authorization_header")
    found = accounts.authenticate(token=token.strip())
    if found is None:
        raise Unauthenticated("The session token is unknown, expired or revoked.", code="invalid_token")
    g.user, g.auth_session, g.roles = found.user, found.session, found.roles


def _enforce() -> None:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None:
        return
    rule = rule_of(view)
    if rule is None:
        raise ApiError("This route declares no access rule.", status=403, code="route_without_access_rule")
    if rule.kind == "public":
        # Tests run requests inside one long app context, where `g` outlives a request: reset it.
        g.user, g.auth_session, g.roles = None, None, frozenset()
        if request.headers.get("Authorization"):
            _load_user()
        return
    _load_user()
    if g.user is None:
        raise Unauthenticated()
    if rule.kind == "roles" and "operator" not in g.roles and not (set(rule.roles) & (g.roles | {"mom"})):
        raise Forbidden("Your roles do not allow this.", code="role_required", errors={"required_roles": list(rule.roles)})


def init_app(app: Flask) -> None:
    app.before_request(_enforce)


def declare_public_endpoints(app: Flask, endpoints: list[str]) -> None:
    """Mark views registered by libraries (static files, OpenAPI docs) as public, explicitly."""
    for endpoint in endpoints:
        view = app.view_functions.get(endpoint)
        if view is not None and rule_of(view) is None:
            app.view_functions[endpoint] = public(functools.wraps(view)(lambda *a, _view=view, **kw: _view(*a, **kw)))
