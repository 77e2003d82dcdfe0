"""A user's withdrawals of available earnings; operators' view of every withdrawal and the payouts behind it."""

from flask import g
from flask_smorest import Blueprint

from app.core import access
from app.core.idempotency import idempotent
from app.core.pagination import PageArgsSchema
from app.payouts import service
from app.payouts.schemas import (
    AdminWithdrawalPageSchema,
    WithdrawalDetailSchema,
    WithdrawalInSchema,
    WithdrawalPageSchema,
    WithdrawalSchema,
    WithdrawalSearchArgsSchema,
)

blp = Blueprint("payouts", __name__, url_prefix="/api/v1", description="Withdrawals to the WeChat wallet.")


@blp.route("/me/withdrawals", methods=["POST"])
@access.authenticated
@idempotent
@blp.arguments(WithdrawalInSchema)
@blp.response(201, WithdrawalSchema)
def request_withdrawal(args):
    """Withdraw from the available balance (minimum 1 yuan, daily cap, one at a time)."""
    return service.request_withdrawal(user_id=g.user.id, openid=g.user.openid, amount_fen=args["amount_fen"])


@blp.route("/me/withdrawals", methods=["GET"])
@access.authenticated
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, WithdrawalPageSchema)
def list_withdrawals(args):
    """The user's withdrawals, newest first."""
    items, next_cursor = service.list_withdrawals(user_id=g.user.id, cursor=args["cursor"], limit=args["limit"])
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/me/withdrawals/<int:withdrawal_id>", methods=["GET"])
@access.authenticated
@blp.response(200, WithdrawalSchema)
def get_withdrawal(withdrawal_id: int):
    """One of the user's withdrawals."""
    return service.get_withdrawal(user_id=g.user.id, withdrawal_id=withdrawal_id)


admin = Blueprint(
    "payouts_admin", __name__, url_prefix="/api/v1/admin", description="Operators: withdrawals and payouts."
)


@admin.route("/withdrawals", methods=["GET"])
@access.roles("operator")
@admin.arguments(WithdrawalSearchArgsSchema, location="query")
@admin.response(200, AdminWithdrawalPageSchema)
def search_withdrawals(args):
    """Search withdrawals by status (or stuck in flight), user and request time, newest first."""
    items, next_cursor = service.search_withdrawals(**args)
    return {"items": items, "next_cursor": next_cursor}


@admin.route("/withdrawals/<int:withdrawal_id>", methods=["GET"])
@access.roles("operator")
@admin.response(200, WithdrawalDetailSchema)
def withdrawal_detail(withdrawal_id: int):
    """One withdrawal with every WeChat Pay transfer and query made for it and the journals it produced."""
    return service.withdrawal_detail(withdrawal_id=withdrawal_id)


@admin.route("/withdrawals/<int:withdrawal_id>/resolve", methods=["POST"])
@access.roles("operator")
@admin.response(200, WithdrawalDetailSchema)
def resolve_withdrawal(withdrawal_id: int):
    """Now, what the payouts-resolve job does: query an unknown payout, re-send a pending one (same number).

    Safe to repeat: WeChat pays a partner_trade_no at most once and an outcome is applied once. A final
    withdrawal (succeeded or failed) is returned unchanged; a failed one is not retried, its money is back
    in the user's available balance.
    """
    return service.resolve_now(withdrawal_id=withdrawal_id, operator_id=g.user.id)


blueprints = [blp, admin]
