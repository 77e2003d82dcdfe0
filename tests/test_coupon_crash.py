"""kill -9 during a claim burst, then reconcile: counts match and no told-claimed coupon is lost."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.accounts import service as accounts
from app.core.db import db
from app.coupons import claims, gate
from app.coupons.models import CouponTemplate, UserCoupon
from tests.coupon_factories import create_template

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.commits
def test_kill_9_mid_burst_then_reconcile(app, api, stores):
    operator = api.as_user("op", roles=("operator",))
    template = create_template(operator, stock=60)
    users = [accounts.ensure_user(openid=f"burst-{i}", nickname="b").id for i in range(200)]
    env = dict(os.environ, BURST_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
               BURST_REDIS_URL=app.config["REDIS_URL"], BURST_INSTANCE_PATH=stores["instance_path"],
               BURST_TEMPLATE_ID=str(template["id"]), BURST_USERS=",".join(map(str, users)))
    child = subprocess.Popen([sys.executable, "-m", "tests.coupon_burst_child"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    told: dict[int, int] = {}
    try:
        for raw in child.stdout:
            if raw.startswith("CLAIMED"):
                _, user_id, coupon_id = raw.split()
                told[int(user_id)] = int(coupon_id)
            if len(told) >= 20 or raw.startswith("DONE"):
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the burst finished before it could be killed"
    assert len(told) >= 20

    reports = claims.reconcile(template_id=template["id"], grace_seconds=0)
    db.session.expire_all()
    held = dict(db.session.execute(select(UserCoupon.user_id, UserCoupon.id).where(
        UserCoupon.template_id == template["id"])).all())
    claimed = db.session.get(CouponTemplate, template["id"]).claimed
    # Everyone told "claimed" has their coupon; the counter, the rows and the gate agree.
    assert all(held.get(user) == coupon for user, coupon in told.items())
    assert claimed == len(held) and claimed <= 60
    snapshot = gate.snapshot(template_id=template["id"])
    assert snapshot["remaining"] == 60 - claimed
    assert {int(k[2:]) for k, v in snapshot.items() if k.startswith("u:") and v == 1} == set(held)
    assert gate.in_flight(template_id=template["id"]) == []
    assert reports[0].gate_remaining == 60 - claimed
    # And the gate hands out exactly what is left, no more.
    late = [accounts.ensure_user(openid=f"late-{i}", nickname="l").id for i in range(80)]
    granted = 0
    for user_id in late:
        try:
            claims.claim(template_id=template["id"], user_id=user_id)
            granted += 1
        except Exception as exc:
            assert getattr(exc, "code", None) == "coupon_out_of_stock"
    assert granted == 60 - claimed
    assert db.session.scalar(select(func.count()).select_from(UserCoupon).where(UserCoupon.template_id == template["id"])) == 60
