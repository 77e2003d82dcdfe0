from marshmallow import Schema, fields, validate

from app.core.pagination import PageSchema


class WithdrawalInSchema(Schema):
    amount_fen = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10**9),
                                metadata={"description": "At least 100 (1 yuan)."})


class WithdrawalSchema(Schema):
    id = fields.Integer()
    amount_fen = fields.Integer()
    status = fields.String(metadata={"description": "pending, unknown, succeeded or failed."})
    partner_trade_no = fields.String()
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    requested_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)


class WithdrawalPageSchema(PageSchema):
    items = fields.List(fields.Nested(WithdrawalSchema))
