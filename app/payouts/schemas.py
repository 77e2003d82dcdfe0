from marshmallow import Schema, fields, validate

from app.core.clock import EARLIEST, LATEST
from app.core.pagination import PageSchema
from app.ledger import service as ledger
from app.payouts.models import WITHDRAWAL_STATUSES

# Beyond these, converting to UTC overflows (a 500); no real order, rule or withdrawal is timed there.
MOMENT = validate.Range(min=EARLIEST, max=LATEST)


class WithdrawalInSchema(Schema):
    amount_fen = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=10**9),
        metadata={"description": "At least 100 (1 yuan)."},
    )


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


class WithdrawalSearchArgsSchema(Schema):
    status = fields.String(load_default=None, validate=validate.OneOf(WITHDRAWAL_STATUSES))
    stuck = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Only in-flight (pending or unknown) withdrawals untouched for a minute: what the "
            "payouts-resolve job picks up."
        },
    )
    user_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**53))
    requested_from = fields.AwareDateTime(
        load_default=None, validate=MOMENT, metadata={"description": "Requested at or after."}
    )
    requested_until = fields.AwareDateTime(
        load_default=None, validate=MOMENT, metadata={"description": "Requested before."}
    )
    cursor = fields.String(load_default=None)
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class AdminWithdrawalSchema(WithdrawalSchema):
    user_id = fields.Integer()
    openid = fields.String()
    attempts = fields.Integer(metadata={"description": "Transfers sent (every one with the same partner_trade_no)."})
    payment_no = fields.String(allow_none=True)
    updated_at = fields.DateTime()


class AdminWithdrawalPageSchema(PageSchema):
    items = fields.List(fields.Nested(AdminWithdrawalSchema))


class WithdrawalAttemptSchema(Schema):
    id = fields.Integer()
    action = fields.String(metadata={"description": "transfer or query."})
    outcome = fields.String(metadata={"description": "succeeded, failed, unknown or (a query) not_found."})
    code = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    payment_no = fields.String(allow_none=True)
    created_by_id = fields.Integer(allow_none=True, metadata={"description": "The operator who asked; none for jobs."})
    at = fields.DateTime()


class WithdrawalDetailSchema(Schema):
    withdrawal = fields.Nested(AdminWithdrawalSchema)
    attempts = fields.List(fields.Nested(WithdrawalAttemptSchema))
    journals = fields.List(fields.Nested(ledger.JournalSchema))
