"""Orders in through the signed webhook; operators' order views; a user's earnings, entry by entry, with why."""

from flask import g, request
from flask_smorest import Blueprint
from sqlalchemy.exc import IntegrityError

from app.core import access
from app.core.http import raw_body, retried_on
from app.core.pagination import PageArgsSchema
from app.orders import flows, service, webhooks
from app.orders.schemas import (
    EntryPageSchema,
    OrderDetailSchema,
    OrderPageSchema,
    OrderSearchArgsSchema,
    WebhookResultSchema,
)

blp = Blueprint("orders", __name__, url_prefix="/api/v1", description="Order webhooks and operator order views.")


@blp.route("/webhooks/orders/<string(maxlength=32):source>", methods=["POST"])
@access.public
@raw_body
@retried_on(IntegrityError)  # two events creating one order at once: the second then applies to it
@blp.doc(
    parameters=[
        {
            "in": "header",
            "name": webhooks.TIMESTAMP_HEADER,
            "required": True,
            "schema": {"type": "string"},
            "description": "Unix seconds; refused when more than five minutes from now.",
        },
        {
            "in": "header",
            "name": webhooks.SIGNATURE_HEADER,
            "required": True,
            "schema": {"type": "string"},
            "description": "Hex HMAC-SHA256 of `timestamp.body` with the source's secret.",
        },
    ]
)
@blp.response(200, WebhookResultSchema)
def order_webhook(source: str):
    """Receive an order event from a union or merchant: {"event_id", "order": {...}} (see ingest_order)."""
    return webhooks.receive(
        source=source,
        timestamp=request.headers.get(webhooks.TIMESTAMP_HEADER),
        signature=request.headers.get(webhooks.SIGNATURE_HEADER),
        body=request.get_data(),
    )


@blp.route("/admin/orders", methods=["GET"])
@access.roles("operator")
@blp.arguments(OrderSearchArgsSchema, location="query")
@blp.response(200, OrderPageSchema)
def search_orders(args):
    """Search orders by source, external id, buyer and status, newest first."""
    items, next_cursor = service.search_orders(**args)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/admin/orders/<int:order_id>", methods=["GET"])
@access.roles("operator")
@blp.response(200, OrderDetailSchema)
def order_detail(order_id: int):
    """One order with its lines, events, attributions and every journal it produced."""
    return flows.order_detail(order_id=order_id)


@blp.route("/me/earnings/entries", methods=["GET"])
@access.authenticated
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, EntryPageSchema)
def my_earning_entries(args):
    """Every ledger entry of the user, newest first, with why: order, line, product, click, group, rule, rate."""
    items, next_cursor = flows.earning_entries(user_id=g.user.id, cursor=args["cursor"], limit=args["limit"])
    return {"items": items, "next_cursor": next_cursor}


blueprints = [blp]
