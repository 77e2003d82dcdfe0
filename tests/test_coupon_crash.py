"""kill -9 during a claim burst and of the drain mid-batch, then reconcile: counts match, no told-claimed coupon is lost."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.accounts import service as accounts
from app.core.db import db, use_case
from app.core.errors import ApiError
from app.coupons import claims
from app.coupons.flash import drain, gate, loading
from app.coupons.models import CouponTemplate, UserCoupon
from tests.coupon_factories import create_template

ROOT = Path(__file__).resolve().parents[1]


def _child(env: dict, role: str, **extra) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.coupon_burst_child"],
        cwd=ROOT,
        env=dict(env, BURST_ROLE=role, **extra),
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _kill(child: subprocess.Popen) -> int:
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    return child.returncode


@pytest.mark.commits
@pytest.mark.parametrize("pause", ["before_commit", "after_commit"])
def test_kill_9_mid_burst_and_mid_drain_then_reconcile(app, api, stores, tmp_path, pause):
    operator = api.as_user("op", roles=("operator",))
    template = create_template(operator, stock=60)
    with use_case():  # committed before the child processes look for them
        users = [accounts.ensure_user(openid=f"burst-{i}", nickname="b").id for i in range(200)]
    env = dict(
        os.environ,
        BURST_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        BURST_REDIS_URL=app.config["REDIS_URL"],
        BURST_INSTANCE_PATH=stores["instance_path"],
        BURST_TEMPLATE_ID=str(template["id"]),
        BURST_USERS=",".join(map(str, users)),
    )
    marker = tmp_path / "drain-paused"
    drainer = _child(env, "drain", BURST_PAUSE=pause, BURST_MARKER=str(marker))
    burst = _child(env, "claims", BURST_MARKER=str(marker))
    told: dict[int, int] = {}
    try:
        for raw in burst.stdout:
            if raw.startswith("CLAIMED"):
                _, user_id, coupon_id = raw.split()
                told[int(user_id)] = int(coupon_id)
            if (len(told) >= 20 and marker.exists()) or raw.startswith("DONE"):
                break
        _wait_for(marker)
    finally:
        burst_code, drainer_code = _kill(burst), _kill(drainer)
    assert burst_code == -signal.SIGKILL, "the burst finished before it could be killed"
    assert drainer_code == -signal.SIGKILL and marker.exists(), "the drain was not killed mid-batch"
    assert len(told) >= 20
    db.session.expire_all()
    landed_before = db.session.scalar(select(func.count()).select_from(UserCoupon))
    assert 0 < landed_before < len(told)

    reports = loading.reconcile(template_id=template["id"])
    db.session.expire_all()
    held = dict(
        db.session.execute(
            select(UserCoupon.user_id, UserCoupon.id).where(UserCoupon.template_id == template["id"])
        ).all()
    )
    claimed = db.session.get(CouponTemplate, template["id"]).claimed
    # Everyone told "claimed" has their coupon, under the id they were told; counter, rows and gate agree.
    assert all(held.get(user) == coupon for user, coupon in told.items())
    assert claimed == len(held) and claimed <= 60
    snapshot = gate.snapshot(template_id=template["id"])
    assert snapshot["remaining"] == 60 - claimed
    assert {int(k[2:]) for k, v in snapshot.items() if k.startswith("u:") and v == 1} == set(held)
    assert gate.in_flight(template_id=template["id"]) == [] and gate.refused() == []
    assert (reports[0].gate_remaining, reports[0].in_flight, reports[0].refused) == (60 - claimed, 0, 0)
    # And the gate hands out exactly what is left, no more.
    late = [accounts.ensure_user(openid=f"late-{i}", nickname="l").id for i in range(80)]
    granted = 0
    for user_id in late:
        try:
            claims.claim_through_gate(template_id=template["id"], user_id=user_id, request_key=f"late-{user_id}")
            granted += 1
        except ApiError as exc:
            assert exc.code == "coupon_out_of_stock"
    assert granted == 60 - claimed
    drain.drain()
    assert (
        db.session.scalar(select(func.count()).select_from(UserCoupon).where(UserCoupon.template_id == template["id"]))
        == 60
    )
