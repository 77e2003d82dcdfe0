from marshmallow import Schema, fields, validate

from app.core.http import STORABLE


class AdjustmentInSchema(Schema):
    user_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=2**53))
    amount_fen = fields.Integer(
        required=True,
        strict=True,
        validate=[validate.Range(min=-(10**9), max=10**9), validate.NoneOf([0])],
        metadata={"description": "Positive credits the user, negative debits (never below zero)."},
    )
    account = fields.String(load_default="available", validate=validate.OneOf(["pending", "available"]))
    reason = fields.String(required=True, validate=[validate.Length(min=1, max=500), STORABLE])


class AdjustmentSchema(Schema):
    journal_id = fields.Integer()
    user_id = fields.Integer()
    amount_fen = fields.Integer()
    account = fields.String()
    reason = fields.String()


class JournalLineSchema(Schema):
    amount_fen = fields.Integer()
    share = fields.String(allow_none=True)
    order_line_id = fields.Integer(allow_none=True)
    attribution_id = fields.Integer(allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    kind = fields.String()
    code = fields.String()


class JournalSchema(Schema):
    id = fields.Integer()
    key = fields.String()
    kind = fields.String()
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    lines = fields.List(fields.Nested(JournalLineSchema))


class VerificationSchema(Schema):
    checked_at = fields.DateTime(allow_none=True, metadata={"description": "When the scheduled check last ran."})
    unbalanced_journals = fields.Integer(metadata={"description": "Journals whose lines did not sum to zero."})
    drifted_accounts = fields.Integer(
        metadata={"description": "Accounts whose cached balance differed from their lines."}
    )
    runs = fields.Integer()
    runs_with_problems = fields.Integer()
