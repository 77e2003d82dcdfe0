import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.affiliate import service as affiliate
from app.core.db import db
from app.ledger import service as ledger
from app.ledger.models import LedgerJournal
from app.orders import flows as order_flows
from app.orders import webhooks
from app.orders.models import Order, OrderEvent
from tests.affiliate_helpers import make_product, sign_headers, user_id
from tests.helpers import assert_error

T0 = datetime(2026, 6, 1, tzinfo=UTC)
URL = "/api/v1/webhooks/orders/jd-union"


@pytest.fixture
def secret():
    return webhooks.add_source(name="jd-union").secret


def _body(
    product, *, event_id="e1", version=1, status="paid", refunded=None, external_id="JD1", tracking_code=None
) -> bytes:
    line = {"line_id": "L1", "product_external_id": product.external_id, "quantity": 2, "paid_fen": 5000}
    if refunded is not None:
        line["refunded_fen"] = refunded
    return json.dumps(
        {
            "event_id": event_id,
            "order": {
                "external_id": external_id,
                "status": status,
                "version": version,
                "event_at": T0.isoformat(),
                "buyer_openid": "buyer-openid",
                "tracking_code": tracking_code,
                "lines": [line],
            },
        }
    ).encode()


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_same_webhook_100_times_makes_one_order(client, secret, frozen_clock):
    frozen_clock(T0)
    product = make_product()
    body = _body(product)
    outcomes = [
        client.post(URL, data=body, headers=sign_headers(secret, body)).get_json()["outcome"] for _ in range(100)
    ]
    assert outcomes[0] == "created" and set(outcomes[1:]) == {"duplicate"}
    assert _count(Order) == 1 and _count(LedgerJournal) == 1
    again = _body(product, event_id="e2")  # same order, same version, new event id: stale
    assert client.post(URL, data=again, headers=sign_headers(secret, again)).get_json()["outcome"] == "stale"
    assert _count(Order) == 1 and _count(LedgerJournal) == 1


@pytest.fixture
def shared(api, frozen_clock):
    """A product shared by a sharer (invited by grandma) in a host's group: 5000 fen paid earns 750 commission."""
    frozen_clock(T0)
    grandma, invite = user_id(api, "grandma")
    sharer, _ = user_id(api, "sharer", invite_code=invite)
    host, _ = user_id(api, "host")
    product = make_product(commission_rate_bp=1500)
    code = affiliate.create_share_link(sharer_id=sharer, product_id=product.id, host_id=host).code
    return {"product": product, "code": code, "sharer": sharer, "grandma": grandma, "host": host}


def _deliver(client, secret, shared, **event) -> str:
    body = _body(shared["product"], tracking_code=shared["code"], **event)
    return client.post(URL, data=body, headers=sign_headers(secret, body)).get_json()["outcome"]


def _journals(shared) -> list[tuple]:
    """(kind, key suffix, {(account, share): fen}) per journal of the one order."""
    order_id = db.session.scalar(select(Order.id))
    names = {shared["sharer"]: "sharer", shared["grandma"]: "grandma", shared["host"]: "host", None: "platform"}
    journals = []
    for j in ledger.journals_of_order(order_id=order_id):
        lines = {
            (f"{names[line['owner_id']]}:{line['kind']}", line["share"]): line["amount_fen"] for line in j["lines"]
        }
        assert len(lines) == len(j["lines"])  # no two lines hide behind one key
        journals.append((j["kind"], j["key"].removeprefix(f"order:{order_id}:"), lines))
    return journals


def _pending(shared) -> tuple[int, int, int]:
    return tuple(ledger.balances(owner_id=shared[who])["pending"] for who in ("sharer", "grandma", "host"))


# What 5000 fen paid posts: the seller's 750 (15%) split 250 / 50 / 50 to level-1, level-2 and host, 400 to the platform.
PAID = (
    "order_paid",
    "paid",
    {
        ("platform:commission_receivable", "seller"): -750,
        ("sharer:pending", "level1"): 250,
        ("grandma:pending", "level2"): 50,
        ("host:pending", "host"): 50,
        ("platform:platform_revenue", "platform"): 400,
    },
)


def test_out_of_order_events(client, secret, shared):
    assert _deliver(client, secret, shared, event_id="r", version=3, status="refunded", refunded=1000) == "created"
    # The order is born refunded: its paid journal and, at once, the reversal of 1000/5000 of every share.
    refund = (
        "refund",
        "refund:3",
        {
            ("sharer:pending", "level1"): -50,
            ("grandma:pending", "level2"): -10,
            ("host:pending", "host"): -10,
            ("platform:platform_revenue", "platform"): -80,
            ("platform:commission_receivable", "seller"): 150,
        },
    )
    assert _journals(shared) == [PAID, refund]
    assert _pending(shared) == (200, 40, 40)
    assert _deliver(client, secret, shared, event_id="p", version=1) == "stale"
    order = db.session.scalar(select(Order))
    assert (order.status, order.version, order.refunded_fen) == ("refunded", 3, 1000)
    assert _deliver(client, secret, shared, event_id="c", version=2, status="completed") == "stale"
    assert db.session.scalar(select(func.count()).select_from(OrderEvent).where(OrderEvent.applied.is_(False))) == 2
    assert _journals(shared) == [PAID, refund] and _pending(shared) == (200, 40, 40)
    assert ledger.derived_balance(owner_id=None, kind="platform_revenue") == 320
    assert ledger.derived_balance(owner_id=None, kind="commission_receivable") == -600
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_completion_before_payment_then_a_partial_refund_then_the_late_payment(client, secret, shared, frozen_clock):
    assert _deliver(client, secret, shared, event_id="c", version=2, status="completed") == "created"
    assert _journals(shared) == [PAID] and _pending(shared) == (250, 50, 50)
    assert _deliver(client, secret, shared, event_id="r", version=3, status="refunded", refunded=2500) == "applied"
    assert _deliver(client, secret, shared, event_id="p", version=1) == "stale"
    refund = (
        "refund",
        "refund:3",
        {
            ("sharer:pending", "level1"): -125,
            ("grandma:pending", "level2"): -25,
            ("host:pending", "host"): -25,
            ("platform:platform_revenue", "platform"): -200,
            ("platform:commission_receivable", "seller"): 375,
        },
    )
    assert _journals(shared) == [PAID, refund] and _pending(shared) == (125, 25, 25)
    # The completion that came first started the holding period: seven days on, what is left settles.
    frozen_clock(T0 + timedelta(days=7))
    assert order_flows.settle_due() == 1
    settle = (
        "settlement",
        "settle",
        {
            ("sharer:pending", "level1"): -125,
            ("sharer:available", "level1"): 125,
            ("grandma:pending", "level2"): -25,
            ("grandma:available", "level2"): 25,
            ("host:pending", "host"): -25,
            ("host:available", "host"): 25,
        },
    )
    assert _journals(shared) == [PAID, refund, settle] and _pending(shared) == (0, 0, 0)
    assert ledger.balances(owner_id=shared["sharer"])["available"] == 125
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


@pytest.mark.parametrize(
    "forgery",
    [
        "tampered",
        "wrong_secret",
        "old",
        "future",
        "missing_signature",
        "missing_timestamp",
        "unknown_source",
        "garbage_signature",
        "superscript_timestamp",
    ],
)
def test_forged_webhooks_are_refused(client, secret, frozen_clock, forgery):
    frozen_clock(T0)
    product = make_product()
    body = _body(product)
    headers = sign_headers(secret, body)
    url = URL
    expected = "signature_invalid"
    if forgery == "tampered":
        body = body.replace(b"5000", b"9000")
    elif forgery == "wrong_secret":
        headers = sign_headers("not-the-secret", body)
    elif forgery == "old":
        headers = sign_headers(secret, body, timestamp=int(T0.timestamp()) - 301)
        expected = "timestamp_out_of_tolerance"
    elif forgery == "future":
        headers = sign_headers(secret, body, timestamp=int(T0.timestamp()) + 301)
        expected = "timestamp_out_of_tolerance"
    elif forgery == "missing_signature":
        headers.pop("X-Mmq-Signature")
        expected = "signature_missing"
    elif forgery == "missing_timestamp":
        headers.pop("X-Mmq-Timestamp")
        expected = "signature_missing"
    elif forgery == "unknown_source":
        url = "/api/v1/webhooks/orders/nobody"
    elif forgery == "garbage_signature":
        headers["X-Mmq-Signature"] = "zz" * 40
    elif forgery == "superscript_timestamp":
        headers["X-Mmq-Timestamp"] = "\u00b2"  # a digit to str.isdigit(), not to int()
        expected = "timestamp_invalid"
    assert_error(client.post(url, data=body, headers=headers), 401, expected)
    assert _count(Order) == 0


def test_tolerance_edge_is_accepted(client, secret, frozen_clock):
    frozen_clock(T0)
    body = _body(make_product())
    response = client.post(URL, data=body, headers=sign_headers(secret, body, timestamp=int(T0.timestamp()) - 300))
    assert response.status_code == 200


def test_invalid_events_are_422_and_write_nothing(client, secret, frozen_clock):
    frozen_clock(T0)
    product = make_product()
    too_much = _body(product, refunded=5001)
    assert_error(client.post(URL, data=too_much, headers=sign_headers(secret, too_much)), 422, "validation_error")
    unknown = json.dumps(
        {
            "event_id": "u",
            "order": {
                "external_id": "X",
                "status": "paid",
                "version": 1,
                "event_at": T0.isoformat(),
                "lines": [{"line_id": "1", "product_external_id": "nope", "paid_fen": 1}],
            },
        }
    ).encode()
    assert_error(client.post(URL, data=unknown, headers=sign_headers(secret, unknown)), 422, "unknown_products")
    garbage = b"{not json"
    assert_error(client.post(URL, data=garbage, headers=sign_headers(secret, garbage)), 400, "invalid_json")
    deep = b"[" * 100_000  # past the JSON decoder's recursion limit
    assert_error(client.post(URL, data=deep, headers=sign_headers(secret, deep)), 400, "invalid_json")
    assert _count(Order) == 0
    good = _body(product, event_id="u")  # the refused event id was not burnt
    assert client.post(URL, data=good, headers=sign_headers(secret, good)).get_json()["outcome"] == "created"


@pytest.mark.parametrize("far", ["0001-01-01T00:00:00+00:00", "9999-12-31T23:00:00-05:00"])
def test_event_times_beyond_any_real_order_are_422(client, secret, frozen_clock, far):
    frozen_clock(T0)
    event = json.loads(_body(make_product()))
    event["order"]["event_at"] = far  # a window stepped back from year 1, or year 9999 in UTC, overflows
    body = json.dumps(event).encode()
    assert_error(client.post(URL, data=body, headers=sign_headers(secret, body)), 422, "validation_error")
    assert _count(Order) == 0


def test_text_no_store_can_hold_is_422(client, secret, frozen_clock):
    frozen_clock(T0)
    body = _body(make_product(), external_id="JD\ud800")  # a lone surrogate: no database encodes it
    assert_error(client.post(URL, data=body, headers=sign_headers(secret, body)), 422, "validation_error")
    assert _count(Order) == 0


def test_refund_can_never_exceed_paid_through_the_service(frozen_clock):
    from app.core.errors import Invalid
    from tests.affiliate_helpers import ingest

    product = make_product(price_fen=1000)
    with pytest.raises(Invalid) as exc:
        ingest(external_id="x", product=product, refunded_fen=1001, status="refunded")
    assert exc.value.code == "refund_exceeds_paid"


def test_statement_import_is_idempotent(app, tmp_path, frozen_clock):
    frozen_clock(T0)
    product = make_product()
    rows = [
        {
            "external_id": f"S{i}",
            "status": "paid",
            "version": 1,
            "event_at": T0.isoformat(),
            "lines": [{"line_id": "1", "product_external_id": product.external_id, "paid_fen": 1000}],
        }
        for i in range(5)
    ]
    text = (
        "\n".join(json.dumps(r) for r in rows[:2])
        + "\n{bad\n"
        + json.dumps({"external_id": "S9"})
        + "\n"
        + json.dumps({**rows[2], "lines": [{"line_id": "1", "product_external_id": "missing", "paid_fen": 1}]})
        + "\n"
        + "\n".join(json.dumps(r) for r in rows[3:])
        + "\n"
    )
    statement = tmp_path / "statement.jsonl"
    statement.write_text(text)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["orders", "import", str(statement), "--source", "jd-union"])
    assert "created 4, applied 0, stale 0, rejected 3" in first.output
    assert "line 3:" in first.output and "line 4:" in first.output and "line 5:" in first.output
    journals = _count(LedgerJournal)
    second = runner.invoke(args=["orders", "import", str(statement), "--source", "jd-union"])
    assert "created 0, applied 0, stale 4, rejected 3" in second.output
    assert _count(Order) == 4 and _count(LedgerJournal) == journals


def test_hostile_source_name_is_refused_like_an_unknown_one(client, secret, frozen_clock):
    frozen_clock(T0)
    body = _body(make_product())
    assert_error(
        client.post("/api/v1/webhooks/orders/jd%00union", data=body, headers=sign_headers(secret, body)),
        401,
        "signature_invalid",
    )


@pytest.mark.commits
def test_concurrent_duplicates_make_one_order(app, secret, frozen_clock):
    import threading

    frozen_clock(T0)
    body = _body(make_product())
    headers = sign_headers(secret, body)
    db.session.commit()  # the source and the product, for the threads' sessions to see
    barrier, outcomes = threading.Barrier(6), []

    def deliver():
        client = app.test_client()
        with app.app_context():
            barrier.wait()
            outcomes.append(client.post(URL, data=body, headers=headers).get_json().get("outcome"))
            db.session.remove()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("created") == 1 and set(outcomes) == {"created", "duplicate"}, outcomes
    assert _count(Order) == 1 and _count(LedgerJournal) == 1


def test_a_refund_above_what_was_paid_on_record_is_refused_and_a_full_one_refunds_the_record(client, secret, shared):
    assert _deliver(client, secret, shared, event_id="p", version=1) == "created"

    def send(event_id, version, status, line):
        event = json.loads(
            _body(shared["product"], event_id=event_id, version=version, status=status, tracking_code=shared["code"])
        )
        event["order"]["lines"] = [line]
        body = json.dumps(event).encode()
        return client.post(URL, data=body, headers=sign_headers(secret, body))

    # The order was paid 5000 on L1; an event claiming 9000 paid and 6000 refunded cannot refund more than 5000.
    assert_error(
        send(
            "r",
            2,
            "refunded",
            {
                "line_id": "L1",
                "product_external_id": shared["product"].external_id,
                "paid_fen": 9000,
                "refunded_fen": 6000,
            },
        ),
        422,
        "refund_exceeds_paid",
    )
    order = db.session.scalar(select(Order))
    assert (order.status, order.version, order.refunded_fen) == ("paid", 1, 0)
    # A refund without amounts (or a cancellation) refunds what was paid on record, whatever the event says was paid.
    response = send(
        "c", 3, "cancelled", {"line_id": "L1", "product_external_id": shared["product"].external_id, "paid_fen": 9000}
    )
    assert response.status_code == 200 and response.get_json()["outcome"] == "applied"
    db.session.expire_all()
    order = db.session.scalar(select(Order))
    assert (order.status, order.version, order.refunded_fen) == ("cancelled", 3, 5000)
    assert _pending(shared) == (0, 0, 0)
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_a_cancellation_refunds_every_line_on_record(client, secret, shared):
    two = json.loads(_body(shared["product"], tracking_code=shared["code"]))
    line = two["order"]["lines"][0]
    two["order"]["lines"] = [line, {**line, "line_id": "L2", "paid_fen": 3000}]
    body = json.dumps(two).encode()
    assert client.post(URL, data=body, headers=sign_headers(secret, body)).get_json()["outcome"] == "created"
    # The sender's cancellation lists one line only: the order is cancelled, so both lines are refunded.
    cancel = json.loads(
        _body(shared["product"], event_id="c", version=2, status="cancelled", tracking_code=shared["code"])
    )
    body = json.dumps(cancel).encode()
    assert client.post(URL, data=body, headers=sign_headers(secret, body)).get_json()["outcome"] == "applied"
    order = db.session.scalar(select(Order))
    assert (order.status, order.paid_fen, order.refunded_fen) == ("cancelled", 8000, 8000)
    assert _pending(shared) == (0, 0, 0)
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_a_refund_reporting_an_earlier_completion_starts_the_holding_period(client, secret, shared, frozen_clock):
    # The partial refund after completion arrives first and carries the completion; the completion event comes late.
    event = json.loads(
        _body(
            shared["product"], event_id="r", version=3, status="refunded", refunded=1000, tracking_code=shared["code"]
        )
    )
    event["order"]["completed_at"] = (T0 + timedelta(days=1)).isoformat()
    body = json.dumps(event).encode()
    assert client.post(URL, data=body, headers=sign_headers(secret, body)).get_json()["outcome"] == "created"
    assert _deliver(client, secret, shared, event_id="c", version=2, status="completed") == "stale"
    assert db.session.scalar(select(Order.completed_at)) == T0 + timedelta(days=1)
    frozen_clock(T0 + timedelta(days=8))
    assert order_flows.settle_due() == 1
    assert (ledger.balances(owner_id=shared["sharer"])["available"], _pending(shared)) == (200, (0, 0, 0))
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}
