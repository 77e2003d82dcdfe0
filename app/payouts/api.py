"""A user's withdrawals of available earnings."""
from flask import g
from flask_smorest import Blueprint

from app.core import access
from app.core.idempotency import idempotent
from app.core.pagination import PageArgsSchema
from app.payouts import service
from app.payouts.schemas import WithdrawalInSchema, WithdrawalPageSchema, WithdrawalSchema

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


blueprints = [blp]
