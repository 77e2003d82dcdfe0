"""Operators: granted claims the database refused, and settling them (see `refusals`)."""

from flask import g
from flask_smorest import Blueprint

from app.core import access
from app.coupons import refusals
from app.coupons.refused_schemas import (
    RefusalListArgsSchema,
    RefusalPageSchema,
    RefusalResolutionSchema,
    RefusalResolveSchema,
)

admin = Blueprint(
    "coupon_refusals",
    __name__,
    url_prefix="/api/v1/admin",
    description='Operators: coupon grants the database refused after the gate said "claimed".',
)


@admin.route("/coupon-refusals", methods=["GET"])
@access.roles("operator")
@admin.arguments(RefusalListArgsSchema, location="query")
@admin.response(200, RefusalPageSchema)
def list_refusals(args):
    """Refused grants not settled yet (template, user, the coupon id the user was told, reason, when), newest first."""
    items, next_cursor = refusals.list_refusals(**args)
    return {"items": items, "next_cursor": next_cursor}


@admin.route("/coupon-refusals/<string(maxlength=41):entry_id>/resolve", methods=["POST"])
@access.roles("operator")
@admin.arguments(RefusalResolveSchema)
@admin.response(200, RefusalResolutionSchema)
def resolve_refusal(args, entry_id: str):
    """Settle one: `reissue` claims the coupon for the user again if the database's stock and limits allow it
    (409 with the claim's code otherwise), `dismiss` settles it with a note. Repeating returns the first resolution."""
    return refusals.resolve_refusal(entry_id=entry_id, action=args["action"], note=args["note"], operator_id=g.user.id)


blueprints = [admin]
