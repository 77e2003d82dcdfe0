"""Institutions, classes, groups, members, group roles, invites and fan-ladder views."""

from flask import g
from flask_smorest import Blueprint

from app.core import access
from app.core.pagination import PageArgsSchema
from app.groups import institutions, members, service
from app.groups.models import GROUP_ROLES
from app.groups.schemas import (
    ClassInSchema,
    ClassListSchema,
    ClassSchema,
    DemandInSchema,
    DemandSchema,
    FanCountsSchema,
    GroupInSchema,
    GroupInviteSchema,
    GroupListArgsSchema,
    GroupPageSchema,
    GroupPatchSchema,
    GroupSchema,
    InstitutionInSchema,
    InstitutionPageSchema,
    InstitutionPatchSchema,
    InstitutionSchema,
    JoinSchema,
    MemberListArgsSchema,
    MemberPageSchema,
    MembershipListSchema,
    MembershipSchema,
    RolesSchema,
)

blp = Blueprint("groups", __name__, url_prefix="/api/v1", description="Institutions, classes, groups and members.")
ROLE = "any(" + ", ".join(GROUP_ROLES) + "):role"


@blp.route("/institutions", methods=["POST"])
@access.roles("host")
@blp.arguments(InstitutionInSchema)
@blp.response(201, InstitutionSchema)
def create_institution(args):
    """Register an institution (kindergarten or parenting organisation) you manage."""
    return institutions.create_institution(actor=access.current_actor(), **args)


@blp.route("/institutions", methods=["GET"])
@access.roles("host")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, InstitutionPageSchema)
def list_institutions(args):
    """Institutions you manage (operators: all)."""
    items, cursor = institutions.list_institutions(
        actor=access.current_actor(), cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": items, "next_cursor": cursor}


@blp.route("/institutions/<int:institution_id>", methods=["GET"])
@access.roles("host")
@blp.response(200, InstitutionSchema)
def get_institution(institution_id: int):
    """One institution you manage."""
    return institutions.get_institution(institution_id=institution_id, actor=access.current_actor())


@blp.route("/institutions/<int:institution_id>", methods=["PATCH"])
@access.roles("host")
@blp.arguments(InstitutionPatchSchema)
@blp.response(200, InstitutionSchema)
def update_institution(args, institution_id: int):
    """Change an institution's name, kind or city."""
    return institutions.update_institution(institution_id=institution_id, actor=access.current_actor(), changes=args)


@blp.route("/institutions/<int:institution_id>/classes", methods=["POST"])
@access.roles("host")
@blp.arguments(ClassInSchema)
@blp.response(201, ClassSchema)
def create_class(args, institution_id: int):
    """Add a class to an institution."""
    return institutions.create_class(institution_id=institution_id, actor=access.current_actor(), **args)


@blp.route("/institutions/<int:institution_id>/classes", methods=["GET"])
@access.roles("host")
@blp.response(200, ClassListSchema)
def list_classes(institution_id: int):
    """The classes of an institution."""
    return {"items": institutions.list_classes(institution_id=institution_id, actor=access.current_actor())}


@blp.route("/groups", methods=["POST"])
@access.roles("host")
@blp.arguments(GroupInSchema)
@blp.response(201, GroupSchema)
def create_group(args):
    """Register a group and its channel credentials (stored encrypted, never shown again)."""
    return service.create_group(actor=access.current_actor(), **args)


@blp.route("/groups", methods=["GET"])
@access.roles("host")
@blp.arguments(GroupListArgsSchema, location="query")
@blp.response(200, GroupPageSchema)
def list_groups(args):
    """Groups you host (operators: all)."""
    items, cursor = service.list_groups(
        actor=access.current_actor(),
        cursor=args["cursor"],
        limit=args["limit"],
        institution_id=args["institution_id"],
        channel=args["channel"],
    )
    return {"items": items, "next_cursor": cursor}


@blp.route("/groups/<int:group_id>", methods=["GET"])
@access.roles("host")
@blp.response(200, GroupSchema)
def get_group(group_id: int):
    """One group you host."""
    return service.get_group(group_id=group_id, actor=access.current_actor())


@blp.route("/groups/<int:group_id>", methods=["PATCH"])
@access.roles("host")
@blp.arguments(GroupPatchSchema)
@blp.response(200, GroupSchema)
def update_group(args, group_id: int):
    """Change a group's settings or replace its credentials."""
    return service.update_group(group_id=group_id, actor=access.current_actor(), changes=args)


@blp.route("/groups/<int:group_id>/invite", methods=["GET"])
@access.roles("host")
@blp.response(200, GroupInviteSchema)
def group_invite(group_id: int):
    """The group's invite: a scene and the mini-program code image carrying it."""
    return service.group_invite(group_id=group_id, actor=access.current_actor())


@blp.route("/groups/join", methods=["POST"])
@access.authenticated
@blp.arguments(JoinSchema)
@blp.response(200, MembershipSchema)
def join_group(args):
    """Join the group of an invite scene (from the scanned mini-program code)."""
    group, member = members.join_group(user_id=g.user.id, scene=args["scene"])
    return {
        "group_id": group.id,
        "group_name": group.name,
        "joined_at": member.joined_at,
        "fan_level": member.fan_level,
    }


@blp.route("/groups/<int:group_id>/leave", methods=["POST"])
@access.authenticated
@blp.response(204)
def leave_group(group_id: int):
    """Leave a group."""
    members.leave_group(user_id=g.user.id, group_id=group_id)


@blp.route("/me/groups", methods=["GET"])
@access.authenticated
@blp.response(200, MembershipListSchema)
def my_groups():
    """The groups you are a member of."""
    return {
        "items": [
            {"group_id": grp.id, "group_name": grp.name, "joined_at": m.joined_at, "fan_level": m.fan_level}
            for grp, m in service.my_groups(user_id=g.user.id)
        ]
    }


@blp.route("/groups/<int:group_id>/members", methods=["GET"])
@access.roles("host")
@blp.arguments(MemberListArgsSchema, location="query")
@blp.response(200, MemberPageSchema)
def list_members(args, group_id: int):
    """Current members (optionally at one fan level), newest first."""
    page, roles, cursor = members.list_members(
        group_id=group_id, actor=access.current_actor(), level=args["level"], cursor=args["cursor"], limit=args["limit"]
    )
    return {
        "items": [
            {
                "user_id": m.user_id,
                "nickname": name,
                "joined_at": m.joined_at,
                "fan_level": m.fan_level,
                "fan_level_at": m.fan_level_at,
                "roles": roles[m.user_id],
            }
            for m, name in page
        ],
        "next_cursor": cursor,
    }


@blp.route(f"/groups/<int:group_id>/members/<int:user_id>/roles/<{ROLE}>", methods=["PUT"])
@access.roles("host")
@blp.response(200, RolesSchema)
def grant_group_role(group_id: int, user_id: int, role: str):
    """Give a member a role in the group: expert, welfare_officer, teacher or obstetrician."""
    roles = members.grant_group_role(group_id=group_id, user_id=user_id, role=role, actor=access.current_actor())
    return {"group_id": group_id, "user_id": user_id, "roles": roles}


@blp.route(f"/groups/<int:group_id>/members/<int:user_id>/roles/<{ROLE}>", methods=["DELETE"])
@access.roles("host")
@blp.response(200, RolesSchema)
def revoke_group_role(group_id: int, user_id: int, role: str):
    """Take a role away from a member."""
    roles = members.revoke_group_role(group_id=group_id, user_id=user_id, role=role, actor=access.current_actor())
    return {"group_id": group_id, "user_id": user_id, "roles": roles}


@blp.route("/groups/<int:group_id>/fans", methods=["GET"])
@access.roles("host")
@blp.response(200, FanCountsSchema)
def fan_counts(group_id: int):
    """How many members stand at each level of the fan ladder."""
    return {"group_id": group_id, "counts": service.fan_counts(group_id=group_id, actor=access.current_actor())}


@blp.route("/groups/<int:group_id>/demands", methods=["POST"])
@access.authenticated
@blp.arguments(DemandInSchema)
@blp.response(201, DemandSchema)
def post_demand(args, group_id: int):
    """Ask a question or make a request in a group you belong to."""
    return members.post_demand(group_id=group_id, user_id=g.user.id, text=args["text"])


blueprints = [blp]
