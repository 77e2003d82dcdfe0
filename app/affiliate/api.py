"""Commission rules and platform switches (operators)."""
from flask import g
from flask_smorest import Blueprint

from app.affiliate import service
from app.affiliate.schemas import (RuleCreateSchema, RuleEndSchema, RuleListArgsSchema, RuleListSchema, RuleSchema,
                                   SettingsSchema)
from app.core import access

admin = Blueprint("affiliate_admin", __name__, url_prefix="/api/v1/admin",
                  description="Commission rules and platform switches.")


@admin.route("/commission-rules", methods=["GET"])
@access.roles("operator")
@admin.arguments(RuleListArgsSchema, location="query")
@admin.response(200, RuleListSchema)
def list_rules(args):
    """Every commission rule (or those in force at `at`), newest first."""
    return {"items": service.list_rules(at=args["at"])}


@admin.route("/commission-rules", methods=["POST"])
@access.roles("operator")
@admin.arguments(RuleCreateSchema)
@admin.response(201, RuleSchema)
def create_rule(args):
    """Add an override per category, product or campaign, valid in a window."""
    return service.create_rule(**args, created_by_id=g.user.id)


@admin.route("/commission-rules/<int:rule_id>/end", methods=["POST"])
@access.roles("operator")
@admin.arguments(RuleEndSchema)
@admin.response(200, RuleSchema)
def end_rule(args, rule_id: int):
    """Close a rule's window (now by default)."""
    return service.end_rule(rule_id=rule_id, ends_at=args["ends_at"])


@admin.route("/settings", methods=["GET"])
@access.roles("operator")
@admin.response(200, SettingsSchema)
def get_settings():
    """The platform switches."""
    return service.get_settings()


@admin.route("/settings", methods=["PATCH"])
@access.roles("operator")
@admin.arguments(SettingsSchema)
@admin.response(200, SettingsSchema)
def update_settings(args):
    """Switch level-2 commission on or off platform-wide."""
    return service.set_level2(enabled=args["level2_enabled"], operator_id=g.user.id)


blueprints = [admin]
