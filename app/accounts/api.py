from flask import g
from flask_smorest import Blueprint

from app.accounts import service
from app.accounts.schemas import (
    InviteSchema,
    LoginResponseSchema,
    LoginSchema,
    RoleChangeResponseSchema,
    TeamArgsSchema,
    TeamPageSchema,
    UpdateMeSchema,
    UserSchema,
)
from app.core import access
from app.core.extensions import limiter

blp = Blueprint("accounts", __name__, url_prefix="/api/v1", description="Login, the current user, team and roles.")


def _login_limit() -> str:
    from flask import current_app

    return current_app.config["LOGIN_RATE_LIMIT"]


@blp.route("/auth/login", methods=["POST"])
@access.public
@limiter.limit(_login_limit)
@blp.arguments(LoginSchema)
@blp.response(200, LoginResponseSchema)
def login(args):
    """Log in with a wx.login() code; optionally bind to an inviter on the first login."""
    result = service.login(code=args["code"], invite_code=args.get("invite_code"))
    return {
        "token": result.token,
        "token_type": "Bearer",
        "expires_at": result.expires_at,
        "created": result.created,
        "user": result.user,
        "referral": {"status": result.referral_status, "inviter_id": result.user.inviter_id},
    }


@blp.route("/auth/logout", methods=["POST"])
@access.authenticated
@blp.response(204)
def logout():
    """Revoke the session whose token made this request."""
    service.logout(session_id=g.auth_session.id, user_id=g.user.id)


@blp.route("/me", methods=["GET"])
@access.authenticated
@blp.response(200, UserSchema)
def me():
    """The logged-in user."""
    return g.user


@blp.route("/me", methods=["PATCH"])
@access.authenticated
@blp.arguments(UpdateMeSchema)
@blp.response(200, UserSchema)
def update_me(args):
    """Change the display name."""
    return service.rename(user_id=g.user.id, nickname=args["nickname"])


@blp.route("/me/invite", methods=["GET"])
@access.authenticated
@blp.response(200, InviteSchema)
def my_invite():
    """The user's invite code and a mini-program code image carrying it as the scene."""
    return service.invite_card(invite_code=g.user.invite_code)


@blp.route("/me/team", methods=["GET"])
@access.authenticated
@blp.arguments(TeamArgsSchema, location="query")
@blp.response(200, TeamPageSchema)
def my_team(args):
    """Level-1 or level-2 members of the user's referral tree, with counts of both."""
    page = service.team(user_id=g.user.id, level=args["level"], cursor=args["cursor"], limit=args["limit"])
    return {
        "counts": {"level_1": page.level_1_count, "level_2": page.level_2_count},
        "items": [
            {"id": m.id, "nickname": m.nickname, "level": level, "inviter_id": m.inviter_id, "bound_at": m.bound_at}
            for m, level in page.members
        ],
        "next_cursor": page.next_cursor,
    }


@blp.route("/admin/users/<int:user_id>/roles/<string:role>", methods=["POST"])
@access.roles("operator")
@blp.response(200, RoleChangeResponseSchema)
def grant_role(user_id: int, role: str):
    """Grant host, partner or operator to a user."""
    return {"user": service.grant_role(user_id=user_id, role=role, granted_by_id=g.user.id)}


@blp.route("/admin/users/<int:user_id>/roles/<string:role>", methods=["DELETE"])
@access.roles("operator")
@blp.response(200, RoleChangeResponseSchema)
def revoke_role(user_id: int, role: str):
    """Revoke a granted role."""
    return {"user": service.revoke_role(user_id=user_id, role=role, revoked_by_id=g.user.id)}


blueprints = [blp]
