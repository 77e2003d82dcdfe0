from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.core.clock import EARLIEST, LATEST
from app.core.http import STORABLE
from app.ledger import service as ledger
from app.orders.models import ORDER_STATUSES

FEN = validate.Range(min=0, max=10**11)

# Beyond these, converting to UTC overflows (a 500); no real order, rule or withdrawal is timed there.
MOMENT = validate.Range(min=EARLIEST, max=LATEST)


class OrderLineInSchema(Schema):
    line_id = fields.String(required=True, validate=[validate.Length(min=1, max=64), STORABLE])
    product_id = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=2**53)
    )
    product_external_id = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(min=1, max=128), STORABLE]
    )
    quantity = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=10**6))
    paid_fen = fields.Integer(required=True, strict=True, validate=FEN)
    refunded_fen = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=FEN,
        metadata={"description": "Cumulative refund of this line."},
    )

    @validates_schema
    def _consistent(self, data, **kwargs):
        if (data.get("product_id") is None) == (data.get("product_external_id") is None):
            raise ValidationError("Give exactly one of product_id and product_external_id.", "product_id")
        if (data.get("refunded_fen") or 0) > data["paid_fen"]:
            raise ValidationError("A refund cannot exceed what was paid.", "refunded_fen")


class OrderInSchema(Schema):
    external_id = fields.String(required=True, validate=[validate.Length(min=1, max=128), STORABLE])
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    version = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=2**62))
    event_at = fields.AwareDateTime(required=True, validate=MOMENT)
    paid_at = fields.AwareDateTime(load_default=None, allow_none=True, validate=MOMENT)
    completed_at = fields.AwareDateTime(load_default=None, allow_none=True, validate=MOMENT)
    buyer_id = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=1, max=2**53)
    )
    buyer_openid = fields.String(
        load_default=None, allow_none=True, validate=[validate.Length(min=1, max=64), STORABLE]
    )
    tracking_code = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Za-z0-9]{1,16}$"))
    lines = fields.List(fields.Nested(OrderLineInSchema), required=True, validate=validate.Length(min=1, max=200))

    @validates_schema
    def _unique_lines(self, data, **kwargs):
        ids = [line["line_id"] for line in data.get("lines", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError("Line ids repeat within the order.", "lines")


class WebhookInSchema(Schema):
    event_id = fields.String(required=True, validate=[validate.Length(min=1, max=128), STORABLE])
    order = fields.Nested(OrderInSchema, required=True)


class WebhookResultSchema(Schema):
    order_id = fields.Integer(allow_none=True)
    outcome = fields.String(metadata={"description": "created, applied, stale or duplicate."})


class OrderSearchArgsSchema(Schema):
    source = fields.String(load_default=None, validate=[validate.Length(min=1, max=32), STORABLE])
    external_id = fields.String(load_default=None, validate=[validate.Length(min=1, max=128), STORABLE])
    buyer_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**53))
    status = fields.String(load_default=None, validate=validate.OneOf(ORDER_STATUSES))
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class OrderSchema(Schema):
    id = fields.Integer()
    source = fields.String()
    external_id = fields.String()
    buyer_id = fields.Integer(allow_none=True)
    tracking_code = fields.String(allow_none=True)
    status = fields.String()
    paid_fen = fields.Integer()
    refunded_fen = fields.Integer()
    version = fields.Integer()
    paid_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)
    settled_at = fields.DateTime(allow_none=True)


class OrderPageSchema(Schema):
    items = fields.List(fields.Nested(OrderSchema))
    next_cursor = fields.String(allow_none=True)


class OrderLineSchema(Schema):
    id = fields.Integer()
    line_key = fields.String()
    product_id = fields.Integer()
    quantity = fields.Integer()
    paid_fen = fields.Integer()
    refunded_fen = fields.Integer()
    seller_bp = fields.Integer()


class OrderEventSchema(Schema):
    version = fields.Integer()
    status = fields.String()
    event_at = fields.DateTime()
    applied = fields.Boolean()
    received_at = fields.DateTime()


class OrderDetailSchema(Schema):
    order = fields.Nested(OrderSchema)
    lines = fields.List(fields.Nested(OrderLineSchema))
    events = fields.List(fields.Nested(OrderEventSchema))
    attributions = fields.List(fields.Dict())
    journals = fields.List(fields.Nested(ledger.JournalSchema))


class WhyOrderSchema(Schema):
    id = fields.Integer()
    source = fields.String()
    external_id = fields.String()
    status = fields.String()
    paid_at = fields.DateTime()


class WhyLineSchema(Schema):
    id = fields.Integer()
    product_id = fields.Integer()
    product_title = fields.String(allow_none=True)
    quantity = fields.Integer()
    paid_fen = fields.Integer()
    refunded_fen = fields.Integer()


class WhyAttributionSchema(Schema):
    id = fields.Integer()
    rule = fields.String(metadata={"description": "tracking_code, click, referrer or none."})
    click_id = fields.Integer(allow_none=True)
    share_link_id = fields.Integer(allow_none=True)
    group_id = fields.Integer(allow_none=True)
    post_id = fields.Integer(allow_none=True)
    content_id = fields.Integer(allow_none=True)
    commission_rule_id = fields.Integer(allow_none=True)
    base_fen = fields.Integer()
    rate_bp = fields.Integer(allow_none=True)
    share_fen = fields.Integer(allow_none=True)


class WhySchema(Schema):
    journal_id = fields.Integer()
    journal_kind = fields.String()
    reason = fields.String(allow_none=True)
    withdrawal_id = fields.Integer(allow_none=True)
    order = fields.Nested(WhyOrderSchema, allow_none=True)
    line = fields.Nested(WhyLineSchema, allow_none=True)
    attribution = fields.Nested(WhyAttributionSchema, allow_none=True)


class EntrySchema(Schema):
    id = fields.Integer()
    amount_fen = fields.Integer()
    account = fields.String()
    share = fields.String(allow_none=True)
    created_at = fields.DateTime()
    why = fields.Nested(WhySchema)


class EntryPageSchema(Schema):
    items = fields.List(fields.Nested(EntrySchema))
    next_cursor = fields.String(allow_none=True)
