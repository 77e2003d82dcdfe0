"""Operator adjustments to users' balances, and the scheduled ledger check's outcome."""

from flask import g
from flask_smorest import Blueprint

from app.core import access
from app.core.idempotency import idempotent
from app.ledger import service, verification
from app.ledger.schemas import AdjustmentInSchema, AdjustmentSchema, VerificationSchema

blp = Blueprint("ledger_admin", __name__, url_prefix="/api/v1/admin", description="Ledger adjustments and checks.")


@blp.route("/adjustments", methods=["POST"])
@access.roles("operator")
@idempotent
@blp.arguments(AdjustmentInSchema)
@blp.response(201, AdjustmentSchema)
def create_adjustment(args):
    """Credit or debit a user's balance with a reason (a journal against the platform's adjustments account)."""
    journal_id = service.adjust(
        user_id=args["user_id"],
        amount_fen=args["amount_fen"],
        account=args["account"],
        reason=args["reason"],
        operator_id=g.user.id,
    )
    return {"journal_id": journal_id, **args}


@blp.route("/ledger/verification", methods=["GET"])
@access.roles("operator")
@blp.response(200, VerificationSchema)
def get_verification():
    """What the scheduled ledger check (every 10 minutes) last found, and how many of its runs found problems."""
    return verification.last_check()


blueprints = [blp]
