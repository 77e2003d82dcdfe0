"""Clicks on share links (moms); commission rules and platform switches (operators).

Moms make their share links through the delivery domain (`POST /share-links`), which checks group, post and content."""

import re
import secrets

from flask import current_app, g, request
from flask_smorest import Blueprint

from app.affiliate import flows, service
from app.affiliate.schemas import (
    ClickResultSchema,
    ClickSchema,
    EarningsSchema,
    ProductDetailSchema,
    RuleCreateSchema,
    RuleEndSchema,
    RuleListArgsSchema,
    RuleListSchema,
    RuleSchema,
    SettingsSchema,
)
from app.core import access

VISITOR_COOKIE = "mmq_vid"
VISITOR_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
VISITOR_COOKIE_SECONDS = 365 * 24 * 3600

blp = Blueprint("affiliate", __name__, url_prefix="/api/v1", description="Share links and clicks.")
short = Blueprint("share_redirect", __name__, url_prefix="", description="Short share links.")


@blp.route("/clicks", methods=["POST"])
@access.authenticated
@blp.arguments(ClickSchema)
@blp.response(200, ClickResultSchema)
def record_click(args):
    """Record a click made inside the mini-program (counted once a minute per user and code)."""
    counted, _ = service.record_click(code=args["code"], buyer_id=g.user.id, visitor=None, via="app")
    return {"counted": counted}


@blp.route("/me/earnings", methods=["GET"])
@access.authenticated
@blp.response(200, EarningsSchema)
def my_earnings():
    """Balances per state and net earnings per share (level-1, level-2, host, content, adjustments)."""
    return service.earnings_summary(user_id=g.user.id)


@blp.route("/products/<int:product_id>", methods=["GET"])
@access.public
@blp.response(200, ProductDetailSchema)
def product_detail(product_id: int):
    """One active product; a logged-in user also sees what sharing it would earn them."""
    user = access.current_user()
    return flows.product_detail(product_id=product_id, viewer_id=user.id if user is not None else None)


@short.route("/s/<string(maxlength=16):code>", methods=["GET"])
@access.public
@short.response(302, description="Redirects to the product's landing page.")
def follow_share_link(code: str):
    """Count the click (once a minute per visitor) and redirect to the landing page."""
    user = access.current_user()
    visitor = request.cookies.get(VISITOR_COOKIE, "")
    new_visitor = not VISITOR_PATTERN.match(visitor)
    if new_visitor:
        visitor = secrets.token_urlsafe(12)
    landing = service.follow_share_link(code=code, buyer_id=user.id if user else None, visitor=visitor)
    # No "Redirecting..." page: browsers never show it, and without a body gunicorn sends the answer in one write.
    response = current_app.response_class(status=302, headers={"Location": landing})
    if new_visitor:
        response.set_cookie(VISITOR_COOKIE, visitor, max_age=VISITOR_COOKIE_SECONDS, httponly=True, samesite="Lax")
    return response


admin = Blueprint(
    "affiliate_admin", __name__, url_prefix="/api/v1/admin", description="Commission rules and platform switches."
)


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


blueprints = [blp, short, admin]
