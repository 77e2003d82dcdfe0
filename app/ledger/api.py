"""Operator adjustments to users' balances."""
from flask import g
from flask_smorest import Blueprint

from app.core import access
from app.core.idempotency import idempotent
from app.ledger import service
from app.ledger.schemas import AdjustmentInSchema, AdjustmentSchema

blp = Blueprint("ledger_admin", __name__, url_prefix="/api/v1/admin", description="Ledger adjustments.")


@blp.route("/adjustments", methods=["POST"])
@access.roles("operator")
@idempotent
@blp.arguments(AdjustmentInSchema)
@blp.response(201, AdjustmentSchema)
def create_adjustment(args):
    """Credit or debit a user's balance with a reason (a journal against the platform's adjustments account)."""
    journal_id = service.adjust(user_id=args["user_id"], amount_fen=args["amount_fen"], account=args["account"],
                                reason=args["reason"], operator_id=g.user.id)
    return {"journal_id": journal_id, **args}


blueprints = [blp]
