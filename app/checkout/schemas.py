from marshmallow import Schema, fields, validate

from app.checkout.models import ORDER_STATUSES
from app.core.fields import NO_NUL, fen, ident, text
from app.core.pagination import PageArgsSchema, PageSchema


class OrderLineInSchema(Schema):
    product_id = ident(required=True)
    quantity = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=99))


class PlaceOrderSchema(Schema):
    lines = fields.List(fields.Nested(OrderLineInSchema), required=True, validate=validate.Length(min=1, max=20))
    coupon_id = ident(load_default=None, allow_none=True, metadata={"description": "One of your available coupons."})
    share_code = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(min=1, max=32), NO_NUL],
        metadata={"description": "The share-link code the buyer came through."},
    )


class OrderLineSchema(Schema):
    id = fields.Integer()
    product_id = fields.Integer()
    title = fields.String()
    unit_price_fen = fields.Integer()
    quantity = fields.Integer()
    amount_fen = fields.Integer()
    discount_fen = fields.Integer()
    paid_fen = fields.Integer()
    refunded_fen = fields.Integer()


class OrderSchema(Schema):
    id = fields.Integer()
    out_trade_no = fields.String()
    status = fields.String(
        metadata={"description": "pending_payment, paid, partially_refunded, refunded, expired or cancelled."}
    )
    subtotal_fen = fields.Integer()
    discount_fen = fields.Integer()
    payable_fen = fields.Integer()
    refunded_fen = fields.Integer(metadata={"description": "Refunded, as WeChat reported it done."})
    refunding_fen = fields.Integer(metadata={"description": "Refunds WeChat accepted but has not finished."})
    coupon_id = fields.Integer(allow_none=True)
    share_code = fields.String(allow_none=True)
    expires_at = fields.DateTime()
    paid_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True, metadata={"description": "When the order counted as received."})
    created_at = fields.DateTime()
    lines = fields.List(fields.Nested(OrderLineSchema))


class MyOrdersArgsSchema(PageArgsSchema):
    status = fields.String(
        load_default=None,
        validate=validate.OneOf(ORDER_STATUSES),
        metadata={"description": "Only orders in this state (default: all)."},
    )


class OrderPageSchema(PageSchema):
    items = fields.List(fields.Nested(OrderSchema))


class PayParamsSchema(Schema):
    appId = fields.String()
    timeStamp = fields.String()
    nonceStr = fields.String()
    package = fields.String()
    signType = fields.String()
    paySign = fields.String()


class PlacedOrderSchema(Schema):
    order = fields.Nested(OrderSchema)
    pay_params = fields.Nested(
        PayParamsSchema,
        allow_none=True,
        metadata={"description": "Pass to wx.requestPayment while the order awaits payment."},
    )


class RefundInSchema(Schema):
    amount_fen = fen(load_default=None, allow_none=True, metadata={"description": "Default: all that is left."})
    reason = text(255, load_default="")


class RefundSchema(Schema):
    id = fields.Integer()
    order_id = fields.Integer()
    seq = fields.Integer()
    out_refund_no = fields.String()
    amount_fen = fields.Integer()
    reason = fields.String()
    wechat_refund_id = fields.String()
    status = fields.String(metadata={"description": "processing until WeChat finishes it, then succeeded or failed."})
    wechat_status = fields.String(metadata={"description": "WeChat's final state: SUCCESS, REFUNDCLOSE or CHANGE."})
    coupon_restored = fields.Boolean()
    created_at = fields.DateTime()
    settled_at = fields.DateTime(allow_none=True)


class AdminOrderSchema(PlacedOrderSchema):
    refunds = fields.List(fields.Nested(RefundSchema))
    user_id = fields.Integer()
