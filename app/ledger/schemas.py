from marshmallow import Schema, fields, validate


class AdjustmentInSchema(Schema):
    user_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**53))
    amount_fen = fields.Integer(required=True, strict=True,
                                validate=[validate.Range(min=-10**9, max=10**9), validate.NoneOf([0])],
                                metadata={"description": "Positive credits the user, negative debits (never below zero)."})
    account = fields.String(load_default="available", validate=validate.OneOf(["pending", "available"]))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class AdjustmentSchema(Schema):
    journal_id = fields.Integer()
    user_id = fields.Integer()
    amount_fen = fields.Integer()
    account = fields.String()
    reason = fields.String()
