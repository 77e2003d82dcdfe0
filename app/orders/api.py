"""Orders in through the signed webhook."""
from flask import request
from flask_smorest import Blueprint

from app.core import access
from app.core.http import raw_body
from app.orders import webhooks
from app.orders.schemas import WebhookResultSchema

blp = Blueprint("orders", __name__, url_prefix="/api/v1", description="Order webhooks and operator order views.")


@blp.route("/webhooks/orders/<string(maxlength=32):source>", methods=["POST"])
@access.public
@raw_body
@blp.doc(parameters=[
    {"in": "header", "name": webhooks.TIMESTAMP_HEADER, "required": True, "schema": {"type": "string"},
     "description": "Unix seconds; refused when more than five minutes from now."},
    {"in": "header", "name": webhooks.SIGNATURE_HEADER, "required": True, "schema": {"type": "string"},
     "description": "Hex HMAC-SHA256 of `timestamp.body` with the source's secret."},
])
@blp.response(200, WebhookResultSchema)
def order_webhook(source: str):
    """Receive an order event from a union or merchant: {"event_id", "order": {...}} (see ingest_order)."""
    return webhooks.receive(source=source, timestamp=request.headers.get(webhooks.TIMESTAMP_HEADER),
                            signature=request.headers.get(webhooks.SIGNATURE_HEADER), body=request.get_data())


blueprints = [blp]
