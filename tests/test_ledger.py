from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from app.affiliate import service as affiliate
from app.core.db import db
from app.ledger import service as ledger
from app.ledger.models import LedgerJournal, LedgerLine
from app.orders import flows as order_flows
from app.orders import tasks as order_tasks
from tests.affiliate_helpers import ingest, make_product, user_id

T0 = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture
def setup(api, frozen_clock):
    frozen_clock(T0)
    grandma, code = user_id(api, "grandma")
    sharer, _ = user_id(api, "sharer", invite_code=code)
    host, _ = user_id(api, "host")
    buyer, _ = user_id(api, "buyer")
    product = make_product(price_fen=10000, commission_rate_bp=2000)
    link = affiliate.create_share_link(sharer_id=sharer, product_id=product.id, host_id=host)
    return {"sharer": sharer, "grandma": grandma, "host": host, "buyer": buyer, "product": product, "code": link.code}


def _order(s, *, status="paid", version=1, refunded=None, external_id="O1"):
    return ingest(
        external_id=external_id,
        product=s["product"],
        buyer_id=s["buyer"],
        tracking_code=s["code"],
        status=status,
        version=version,
        refunded_fen=refunded,
    )


def _bal(user):
    return ledger.balances(owner_id=user)


def _clean():
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_partial_then_full_refund_before_settlement_reverses_every_share(setup):
    s = setup
    _order(s)
    assert (_bal(s["sharer"])["pending"], _bal(s["grandma"])["pending"], _bal(s["host"])["pending"]) == (500, 100, 100)
    _order(s, status="refunded", version=2, refunded=3333)
    # floor(500 × 3333/10000) = 166 reversed; level-2 and host too: floor(100 × 0.3333) = 33
    assert (_bal(s["sharer"])["pending"], _bal(s["grandma"])["pending"], _bal(s["host"])["pending"]) == (334, 67, 67)
    _order(s, status="refunded", version=3, refunded=10000)
    assert (_bal(s["sharer"])["pending"], _bal(s["grandma"])["pending"], _bal(s["host"])["pending"]) == (0, 0, 0)
    assert ledger.derived_balance(owner_id=None, kind="platform_revenue") == 0
    assert ledger.derived_balance(owner_id=None, kind="commission_receivable") == 0
    _clean()


def test_settlement_waits_for_completion_and_holding(setup, frozen_clock):
    s = setup
    _order(s)
    frozen_clock(T0 + timedelta(days=30))
    assert order_flows.settle_due() == 0  # paid, never completed
    _order(s, status="completed", version=2)
    frozen_clock(T0 + timedelta(days=37) - timedelta(seconds=1))
    assert order_tasks.settle() == 0
    frozen_clock(T0 + timedelta(days=37))
    assert order_tasks.settle() == 1
    assert _bal(s["sharer"]) == {"pending": 0, "available": 500, "withdrawing": 0, "withdrawn": 0}
    assert order_tasks.settle() == 0  # idempotent
    _clean()


def test_refund_after_settlement_claws_back_and_nets_later(setup, frozen_clock):
    s = setup
    _order(s, status="completed")
    frozen_clock(T0 + timedelta(days=8))
    order_tasks.settle()
    _order(s, status="refunded", version=2, refunded=5000)
    assert _bal(s["sharer"])["available"] == 250 and _bal(s["grandma"])["available"] == 50
    kinds = set(db.session.scalars(select(LedgerJournal.kind)))
    assert "clawback" in kinds
    _order(s, status="refunded", version=3, refunded=10000)
    assert _bal(s["sharer"])["available"] == 0
    _clean()


def test_partial_refund_then_settlement_moves_the_rest(setup, frozen_clock):
    s = setup
    _order(s, status="completed")
    _order(s, status="refunded", version=2, refunded=2500)
    frozen_clock(T0 + timedelta(days=8))
    order_tasks.settle()
    assert _bal(s["sharer"]) == {"pending": 0, "available": 375, "withdrawing": 0, "withdrawn": 0}
    assert _bal(s["grandma"])["available"] == 75
    _clean()


def test_negative_available_nets_against_later_earnings(setup, frozen_clock, api):
    from app.ledger.service import JournalDraft, LineDraft

    s = setup
    _order(s, status="completed")
    frozen_clock(T0 + timedelta(days=8))
    order_tasks.settle()
    # the sharer withdrew everything meanwhile (simulated by posting the withdrawal journal)
    ledger.post_journals(
        [
            JournalDraft(
                key="w",
                kind="withdrawal",
                lines=[LineDraft(s["sharer"], "available", -500), LineDraft(s["sharer"], "withdrawing", 500)],
            )
        ],
        guard=frozenset({(s["sharer"], "available")}),
    )
    db.session.commit()
    _order(s, status="refunded", version=2, refunded=10000)
    assert _bal(s["sharer"])["available"] == -500
    _order(s, status="completed", external_id="O2")
    frozen_clock(T0 + timedelta(days=16))
    order_tasks.settle()
    assert _bal(s["sharer"])["available"] == 0
    _clean()


def test_guard_refuses_overdraft(setup):
    from app.ledger.service import InsufficientBalance, JournalDraft, LineDraft

    s = setup
    with pytest.raises(InsufficientBalance):
        ledger.post_journals(
            [
                JournalDraft(
                    key="w",
                    kind="withdrawal",
                    lines=[LineDraft(s["sharer"], "available", -1), LineDraft(s["sharer"], "withdrawing", 1)],
                )
            ],
            guard=frozenset({(s["sharer"], "available")}),
        )
    db.session.rollback()


def test_unbalanced_journal_is_refused():
    from app.ledger.service import JournalDraft, LineDraft

    with pytest.raises(ValueError):
        ledger.post_journals([JournalDraft(key="bad", kind="adjustment", lines=[LineDraft(None, "adjustments", 5)])])


REFUSED = [
    "UPDATE ledger_lines SET amount_fen = amount_fen + 1",
    "DELETE FROM ledger_lines",
    "TRUNCATE ledger_lines",
    "UPDATE ledger_journals SET reason = 'x'",
    "DELETE FROM ledger_journals",
    "TRUNCATE ledger_journals CASCADE",
    "TRUNCATE ledger_accounts CASCADE",
    "TRUNCATE orders CASCADE",
]


# Committing: the suite's cleanup between committing tests switches the triggers off and must leave them on.
@pytest.mark.parametrize("isolation_mode", ["rolled_back", pytest.param("committing", marks=pytest.mark.commits)])
def test_database_refuses_to_change_ledger_lines(setup, isolation_mode):
    s = setup
    _order(s)
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's")
    from sqlalchemy.exc import DBAPIError

    # The setting the first trigger honoured lets nothing through any more.
    db.session.execute(text("SET LOCAL mmq.ledger_purge = 'on'"))
    for statement in REFUSED:
        with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
            db.session.execute(text(statement))
    assert (
        db.session.scalars(
            text(
                "SELECT tgenabled FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid IN ('ledger_lines'::regclass, 'ledger_journals'::regclass)"
            )
        ).all()
        == ["O"] * 4
    )
    assert db.session.scalar(select(func.count()).select_from(LedgerLine)) == 5
    _clean()


def test_operator_adjustments(api, setup):
    s = setup
    operator = api.as_user("op", roles=("operator",))
    body = {"user_id": s["sharer"], "amount_fen": 300, "reason": "补发活动奖励"}
    headers = {"Idempotency-Key": "adj-1"}
    first = operator.post("/api/v1/admin/adjustments", json=body, headers=headers)
    assert first.status_code == 201 and first.get_json()["account"] == "available"
    assert operator.post("/api/v1/admin/adjustments", json=body, headers=headers).get_json() == first.get_json()
    assert _bal(s["sharer"])["available"] == 300
    journal = db.session.get(LedgerJournal, first.get_json()["journal_id"])
    assert (journal.kind, journal.reason, journal.created_by_id) == ("adjustment", "补发活动奖励", operator.user["id"])
    debit = operator.post(
        "/api/v1/admin/adjustments", json=body | {"amount_fen": -301}, headers={"Idempotency-Key": "adj-2"}
    )
    assert debit.status_code == 409 and debit.get_json()["code"] == "insufficient_balance"
    assert (
        operator.post(
            "/api/v1/admin/adjustments", json=body | {"amount_fen": -300}, headers={"Idempotency-Key": "adj-3"}
        ).status_code
        == 201
    )
    assert _bal(s["sharer"])["available"] == 0
    assert (
        operator.post(
            "/api/v1/admin/adjustments", json=body | {"amount_fen": 0}, headers={"Idempotency-Key": "adj-4"}
        ).status_code
        == 422
    )
    assert (
        operator.post(
            "/api/v1/admin/adjustments", json=body | {"user_id": 99999}, headers={"Idempotency-Key": "adj-5"}
        ).get_json()["code"]
        == "user_not_found"
    )
    assert (
        api.as_user("mom")
        .post("/api/v1/admin/adjustments", json=body, headers={"Idempotency-Key": "adj-6"})
        .status_code
        == 403
    )
    # A lone surrogate (JSON's "\ud800") no database encodes: a validation error, not a 500.
    assert (
        operator.post(
            "/api/v1/admin/adjustments", json=body | {"reason": "补发\ud800"}, headers={"Idempotency-Key": "adj-7"}
        ).get_json()["code"]
        == "validation_error"
    )
    _clean()


def test_scheduled_verification_reports_a_drifted_cached_balance(app, api, setup, caplog, monkeypatch):
    from app.ledger import verification

    monkeypatch.setattr(verification.log, "disabled", False)  # the migrations' logging config disables loggers
    s = setup
    operator = api.as_user("op", roles=("operator",))
    assert operator.get("/api/v1/admin/ledger/verification").get_json() == {
        "checked_at": None,
        "unbalanced_journals": 0,
        "drifted_accounts": 0,
        "runs": 0,
        "runs_with_problems": 0,
    }
    _order(s)
    job = next(job for job in app.extensions["scheduled_jobs"] if job.id == "ledger-verify")
    assert job.trigger_args == {"minutes": 10}
    with caplog.at_level("ERROR"):
        job.func()  # the queue runs inline in tests
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # the cache moves without its lines, as a buggy write would
    db.session.execute(
        text("UPDATE ledger_accounts SET balance_fen = balance_fen + 7 WHERE code = :code"),
        {"code": f"user:{s['sharer']}:pending"},
    )
    db.session.commit()
    with caplog.at_level("ERROR"):
        job.func()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        f"ledger: 1 cached balance(s) differ from their lines: user:{s['sharer']}:pending cached 507 fen, lines 500 fen"
    ]
    assert operator.get("/api/v1/admin/ledger/verification").get_json() == {
        "checked_at": T0.isoformat(),
        "unbalanced_journals": 0,
        "drifted_accounts": 1,
        "runs": 2,
        "runs_with_problems": 1,
    }
    assert api.as_user("mom").get("/api/v1/admin/ledger/verification").status_code == 403
