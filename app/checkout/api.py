from flask import Response, g, request
from flask_smorest import Blueprint

from app.checkout import flows, refunds, service
from app.checkout.schemas import (
    AdminOrderSchema,
    MyOrdersArgsSchema,
    OrderPageSchema,
    PlacedOrderSchema,
    PlaceOrderSchema,
    RefundInSchema,
    RefundSchema,
)
from app.core import access
from app.core.http import before_use_case, raw_body
from app.core.idempotency import idempotent
from app.coupons import service as coupons

blp = Blueprint("checkout", __name__, url_prefix="/api/v1", description="Own checkout: orders paid with WeChat Pay.")

WECHAT_ACK = "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"


def _order_out(order, lines=None) -> dict:
    out = {
        name: getattr(order, name)
        for name in (
            "id",
            "out_trade_no",
            "status",
            "subtotal_fen",
            "discount_fen",
            "payable_fen",
            "refunded_fen",
            "refunding_fen",
            "coupon_id",
            "share_code",
            "expires_at",
            "paid_at",
            "completed_at",
            "created_at",
        )
    }
    out["lines"] = lines if lines is not None else service.order_lines(order_id=order.id)
    return out


def _placed(order, lines=None) -> dict:
    params = service.pay_params(order=order) if order.status == "pending_payment" else None
    return {"order": _order_out(order, lines), "pay_params": params}


@blp.route("/orders", methods=["POST"])
@access.authenticated
# Coupons the buyer claimed a moment ago land first and stay landed, whatever this order's fate.
@before_use_case(lambda **_: coupons.land_claims(user_id=access.caller_id()))
@idempotent
@blp.arguments(PlaceOrderSchema)
@blp.response(201, PlacedOrderSchema)
def place_order(args):
    """Buy our own products, optionally with a coupon; answers the order and the wx.requestPayment parameters."""
    placed = flows.place_order(
        user_id=g.user.id,
        lines=args["lines"],
        coupon_id=args["coupon_id"],
        share_code=args["share_code"],
        client_ip=request.remote_addr or "127.0.0.1",
    )
    return {"order": _order_out(placed.order, placed.lines), "pay_params": placed.pay_params}


@blp.route("/orders/<int:order_id>", methods=["GET"])
@access.authenticated
@blp.response(200, PlacedOrderSchema)
def get_order(order_id: int):
    """One of your orders (with fresh pay parameters while it awaits payment)."""
    return _placed(service.get_order(order_id=order_id, user_id=g.user.id))


@blp.route("/orders/<int:order_id>/cancel", methods=["POST"])
@access.authenticated
@before_use_case(lambda order_id: flows.close_for_cancel(order_id=order_id, user_id=access.caller_id()))
@blp.response(200, PlacedOrderSchema)
def cancel_order(order_id: int):
    """Cancel one of your unpaid orders: it can no longer be paid and its coupon is free again (idempotent).

    409 `order_already_paid` if it was paid (meanwhile): ask for a refund instead.
    """
    return _placed(flows.cancel_order(order_id=order_id, user_id=g.user.id))


@blp.route("/me/orders", methods=["GET"])
@access.authenticated
@blp.arguments(MyOrdersArgsSchema, location="query")
@blp.response(200, OrderPageSchema)
def my_orders(args):
    """Your own-checkout orders, newest first (pay an unpaid one through GET /orders/<id>)."""
    page, next_cursor = service.list_orders(
        user_id=g.user.id, status=args["status"], cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": [_order_out(order, lines) for order, lines in page], "next_cursor": next_cursor}


@blp.route("/webhooks/wechatpay", methods=["POST"])
@access.public
@raw_body
def wechatpay_notification():
    """WeChat Pay's payment notification (XML, signed); acknowledged once applied, however often it comes."""
    flows.handle_notification(xml=request.get_data())
    return Response(WECHAT_ACK, mimetype="text/xml")


@blp.route("/admin/checkout-orders/<int:order_id>", methods=["GET"])
@access.roles("operator")
@blp.response(200, AdminOrderSchema)
def admin_order(order_id: int):
    """An own-checkout order with its refunds."""
    order = service.get_order(order_id=order_id)
    return _placed(order) | {"refunds": refunds.list_refunds(order_id=order.id), "user_id": order.user_id}


@blp.route("/admin/checkout-orders/<int:order_id>/refunds", methods=["POST"])
@access.roles("operator")
@idempotent
@blp.arguments(RefundInSchema)
@blp.response(201, RefundSchema)
def refund(args, order_id: int):
    """Ask WeChat Pay to refund part or all of a paid order (default: all that is left).

    The refund answers `processing`: the order's `refunding_fen` holds the amount until WeChat reports the
    refund done (its notification, or a query every minute), which moves it to `refunded_fen`, brings the
    coupon back on a whole refund while it is valid, and reverses commission; a refund WeChat closes frees
    the amount again. 409 `refund_in_progress` when refunds under way already cover the whole order.
    """
    return refunds.refund(
        order_id=order_id, amount_fen=args["amount_fen"], reason=args["reason"], requested_by_id=g.user.id
    )


blueprints = [blp]


@blp.route("/webhooks/wechatpay/refund", methods=["POST"])
@access.public
@raw_body
def wechatpay_refund_notification():
    """WeChat Pay's refund notification (XML, encrypted with the merchant key); the outcome is confirmed by a query."""
    refunds.handle_refund_notification(xml=request.get_data())
    return Response(WECHAT_ACK, mimetype="text/xml")


@blp.route("/admin/checkout-refunds/<int:refund_id>/sync", methods=["POST"])
@access.roles("operator")
@blp.response(200, RefundSchema)
def sync_refund(refund_id: int):
    """Ask WeChat now how a processing refund stands, and apply it if WeChat has finished it."""
    refunds.sync_refund(refund_id=refund_id)
    return refunds.get_refund(refund_id=refund_id)
