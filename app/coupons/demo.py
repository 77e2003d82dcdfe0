"""Demo coupons: a flash drop, a threshold coupon and a percent coupon, live now, issued by the demo operator."""

from datetime import timedelta

from sqlalchemy import select

from app.accounts import service as accounts
from app.core.clock import now_utc
from app.core.db import db
from app.coupons import templates
from app.coupons.models import CouponTemplate

SEED_ORDER = 50

DEMO = [
    {"name": "20:00 闪购 立减5元", "kind": "fixed", "amount_off_fen": 500, "stock": 100},
    {"name": "满100减20", "kind": "threshold", "threshold_fen": 10000, "amount_off_fen": 2000, "stock": 500},
    {"name": "绘本8折 最高减30", "kind": "percent", "percent_off_bp": 2000, "cap_fen": 3000, "stock": 500},
]


def seed() -> list[str]:
    """Create the demo coupons (skipped when a template of that name exists); no extra logins."""
    operator = accounts.find_user(ref="operator") or accounts.ensure_user(
        openid="operator", nickname="运营小王", roles=("operator",)
    )
    actor = templates.Actor(id=operator.id, operator=True)
    now = now_utc()
    for spec in DEMO:
        if db.session.scalar(select(CouponTemplate.id).where(CouponTemplate.name == spec["name"])) is not None:
            continue
        values = {
            "description": "",
            "amount_off_fen": 0,
            "threshold_fen": 0,
            "percent_off_bp": 0,
            "cap_fen": 0,
            "scope": "all",
            "validity_kind": "days",
            "valid_from": None,
            "valid_until": None,
            "valid_days": 7,
            "claim_starts_at": now - timedelta(minutes=1),
            "claim_ends_at": now + timedelta(days=30),
            "per_user_limit": 1,
            "per_day_limit": None,
            "claim_gate": "redis",
            "group_id": None,
        } | spec
        template = templates.create_template(
            actor=actor, values=values, budget_id=None, scope_ids={k: [] for k in templates.SCOPE_LISTS}
        )
        templates.change_status(template_id=template.id, actor=actor, status="active")
    return []
