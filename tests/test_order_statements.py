"""Statement imports: the set-based path gives what webhooks give; CSV statements; clicks still in Redis count."""

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.affiliate import service as affiliate
from app.affiliate.models import Attribution
from app.catalog import service as catalog
from app.core.db import db
from app.ledger import service as ledger
from app.ledger.models import LedgerJournal, LedgerLine
from app.orders import flows as order_flows
from app.orders import importing, webhooks
from app.orders import service as orders
from app.orders.models import Order, OrderEvent, OrderLine
from tests.affiliate_helpers import make_product, sign_headers, user_id

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def _click(code: str, buyer: int, at: datetime, *, persist: bool = True) -> None:
    from app.core import clock

    clock.freeze(at)
    affiliate.record_click(code=code, buyer_id=buyer, visitor=None, via="app")
    if persist:
        affiliate.persist_clicks()


@pytest.fixture
def world(api, frozen_clock):
    """A referral chain, categories two deep with rules, links with hosts and authors, clicks in and out of the window."""
    frozen_clock(T0 - timedelta(days=10))
    grandma, grandma_code = user_id(api, "grandma")
    sharer, sharer_code = user_id(api, "sharer", invite_code=grandma_code)
    buyer, _ = user_id(api, "buyer", invite_code=sharer_code)
    people = {
        "grandma": grandma,
        "sharer": sharer,
        "buyer": buyer,
        "host": user_id(api, "host")[0],
        "author": user_id(api, "author")[0],
        "other": user_id(api, "other")[0],
        "loner": user_id(api, "loner")[0],
    }
    parent = catalog.create_category(name="母婴", parent_id=None)
    child = catalog.create_category(name="洗护", parent_id=parent.id)
    products = {
        "child": make_product(price_fen=9999, commission_rate_bp=1500, category_id=child.id),
        "parent": make_product(price_fen=5000, commission_rate_bp=2000, category_id=parent.id),
        "plain": make_product(price_fen=3333, commission_rate_bp=1500),
        "thin": make_product(price_fen=10000, commission_rate_bp=300),
    }
    operator = api.as_user("op", roles=("operator",))
    zero = {"level2_bp": 100, "host_bp": 100, "content_bp": 100}
    for body in (
        {"kind": "category", "category_id": parent.id, "level1_bp": 700},
        {
            "kind": "product",
            "product_id": products["plain"].id,
            "level1_bp": 300,
            "level2_bp": 50,
            "host_bp": 0,
            "content_bp": 0,
        },
        {
            "kind": "campaign",
            "category_id": parent.id,
            "level1_bp": 900,
            "starts_at": (T0 + timedelta(minutes=30)).isoformat(),
        },
    ):
        assert operator.post("/api/v1/admin/commission-rules", json=zero | body).status_code == 201
    links = {
        "group": affiliate.create_share_link(
            sharer_id=sharer,
            product_id=products["child"].id,
            group_id=1,
            post_id=2,
            content_id=3,
            host_id=people["host"],
            content_author_id=people["author"],
        ),
        "other": affiliate.create_share_link(sharer_id=people["other"], product_id=products["plain"].id, group_id=7),
        "own": affiliate.create_share_link(sharer_id=buyer, product_id=products["child"].id, host_id=buyer),
    }
    _click(links["group"].code, buyer, T0 - timedelta(days=2))  # an earlier click: the last one wins
    _click(links["other"].code, buyer, T0 - timedelta(days=1))
    _click(links["group"].code, people["loner"], T0 - timedelta(days=8))  # outside the window by then
    _click(links["group"].code, people["other"], T0 - timedelta(hours=1), persist=False)  # still in Redis
    frozen_clock(T0)
    return people, products, links


def _statement(people, products, links) -> list[dict]:
    def order(n, buyer, *lines, code=None, status="paid", at=T0, **extra):
        return {
            "external_id": f"X{n}",
            "status": status,
            "version": 1,
            "event_at": at.isoformat(),
            "buyer_id": buyer,
            "tracking_code": code,
            "lines": [
                {"line_id": str(k), "product_id": product.id, "quantity": 1, "paid_fen": paid, **more}
                for k, (product, paid, more) in enumerate(lines, start=1)
            ],
            **extra,
        }

    child, parent, plain, thin = (products[k] for k in ("child", "parent", "plain", "thin"))
    return [
        order(1, people["buyer"], (child, 9999, {}), code=links["group"].code),
        order(2, people["buyer"], (plain, 3333, {})),
        order(3, people["loner"], (child, 1000, {})),
        order(4, people["buyer"], (parent, 5000, {}), code="nosuchcode"),
        order(5, people["buyer"], (child, 9999, {}), code=links["own"].code),
        order(6, people["grandma"], (child, 9999, {}), (plain, 3333, {}), (parent, 4999, {}), code=links["group"].code),
        order(7, people["other"], (child, 777, {})),
        order(8, people["buyer"], (parent, 5000, {}), at=T0 + timedelta(hours=1)),
        order(9, people["buyer"], (thin, 10000, {}), code=links["group"].code),
        order(
            10,
            people["buyer"],
            (child, 9999, {"refunded_fen": 3333}),
            (plain, 3333, {}),
            status="refunded",
            code=links["group"].code,
        ),
        order(11, people["sharer"], (child, 5000, {}), status="cancelled", code=links["group"].code),
        order(12, None, (plain, 2000, {}), code=links["other"].code),
    ]


def _outcome(source: str, external_id: str) -> dict:
    """An order as the operators see it, with ids replaced by what they point at so two orders compare."""
    order_id = db.session.scalar(select(Order.id).where(Order.source == source, Order.external_id == external_id))
    detail = order_flows.order_detail(order_id=order_id)
    keys = {line.id: line.line_key for line in detail["lines"]}
    by_attribution = {a["id"]: keys[a["order_line_id"]] for a in detail["attributions"]}
    order = detail["order"]
    return {
        "order": (order.buyer_id, order.tracking_code, order.status, order.paid_fen, order.refunded_fen, order.version),
        "lines": sorted(
            (line.line_key, line.product_id, line.paid_fen, line.refunded_fen, line.seller_bp)
            for line in detail["lines"]
        ),
        "events": [(e.version, e.status, e.applied, e.payload) for e in detail["events"]],
        "attributions": sorted(
            [
                (
                    keys[a["order_line_id"]],
                    *(v for k, v in sorted(a.items()) if k not in {"id", "order_id", "order_line_id", "created_at"}),
                )
                for a in detail["attributions"]
            ],
            key=str,
        ),
        "journals": [
            (
                j["key"].replace(f":{order_id}:", ":#:"),
                j["kind"],
                sorted(
                    (
                        (
                            line["owner_id"],
                            line["kind"],
                            line["amount_fen"],
                            line["share"],
                            keys.get(line["order_line_id"]),
                            by_attribution.get(line["attribution_id"]),
                        )
                        for line in j["lines"]
                    ),
                    key=str,
                ),
            )
            for j in detail["journals"]
        ],
    }


def test_bulk_import_gives_what_webhooks_give(world, client):
    people, products, links = world
    statement = _statement(people, products, links)
    report = importing.import_file(stream=io.StringIO("\n".join(json.dumps(o) for o in statement)), source="bulk")
    assert (report.created, report.errors) == (len(statement), [])
    secret = webhooks.add_source(name="hook").secret
    for n, order in enumerate(statement):
        body = json.dumps({"event_id": f"e{n}", "order": order}).encode()
        response = client.post("/api/v1/webhooks/orders/hook", data=body, headers=sign_headers(secret, body))
        assert response.get_json()["outcome"] == "created", response.get_json()
    for order in statement:
        bulk, single = _outcome("bulk", order["external_id"]), _outcome("hook", order["external_id"])
        assert bulk == single, order["external_id"]
    by_rule = {}
    for external_id in (o["external_id"] for o in statement):
        order_id = db.session.scalar(select(Order.id).where(Order.source == "bulk", Order.external_id == external_id))
        by_rule[external_id] = {a["rule"] for a in affiliate.attributions_of_order(order_id=order_id)}
    assert by_rule == {
        "X1": {"tracking_code"},
        "X2": {"click"},
        "X3": {"none"},
        "X4": {"click"},
        "X5": {"tracking_code"},
        "X6": {"tracking_code"},
        "X7": {"click"},
        "X8": {"click"},
        "X9": {"tracking_code"},
        "X10": {"tracking_code"},
        "X11": {"tracking_code"},
        "X12": {"tracking_code"},
    }
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_bulk_rates_follow_rule_windows_and_category_lineage_within_one_batch(world):
    people, products, links = world
    statement = _statement(people, products, links)
    importing.import_file(stream=io.StringIO("\n".join(json.dumps(o) for o in statement)), source="bulk")

    def line_rates(external_id: str) -> list[tuple[int, int]]:
        order_id = db.session.scalar(select(Order.id).where(Order.source == "bulk", Order.external_id == external_id))
        return [(a["level1_bp"], a["level1_fen"]) for a in affiliate.attributions_of_order(order_id=order_id)]

    assert line_rates("X1") == [(700, 699)]  # the parent category's rule reaches the child category
    assert line_rates("X4") == [(700, 350)]  # the parent category's own product, before the campaign
    assert line_rates("X8") == [(900, 450)]  # paid after the campaign started, in the same batch as X4
    assert line_rates("X9") == [(500, 187)]  # default 5% capped by a 3% seller commission, scaled down


def test_replaying_a_statement_adds_no_rows(world):
    people, products, links = world
    text = "\n".join(json.dumps(o) for o in _statement(people, products, links))
    importing.import_file(stream=io.StringIO(text), source="bulk")
    tables = (Order, OrderLine, OrderEvent, Attribution, LedgerJournal, LedgerLine)
    counts = [_count(m) for m in tables]
    again = importing.import_file(stream=io.StringIO(text), source="bulk")
    assert (again.created, again.stale) == (0, 12)
    assert [_count(m) for m in tables] == counts


def test_click_still_in_redis_attributes_a_webhook_order(api, client, frozen_clock):
    frozen_clock(T0)
    product = make_product()
    sharer, _ = user_id(api, "sharer")
    buyer, _ = user_id(api, "buyer")
    link = affiliate.create_share_link(sharer_id=sharer, product_id=product.id, group_id=4)
    _click(link.code, buyer, T0 - timedelta(seconds=2), persist=False)
    frozen_clock(T0)
    result = order_flows.ingest_order(
        source="union",
        external_id="r1",
        status="paid",
        version=1,
        event_at=T0,
        lines=[{"line_id": "1", "product_id": product.id, "quantity": 1, "paid_fen": 1000}],
        buyer_id=buyer,
    )
    [a] = affiliate.attributions_of_order(order_id=result.order_id)
    assert (a["rule"], a["level1_id"], a["group_id"]) == ("click", sharer, 4) and a["click_id"] is not None


CSV_HEADER = "external_id,status,version,event_at,buyer_id,tracking_code,line_id,product_id,product_external_id,paid_fen,refunded_fen\n"


def test_csv_statement_groups_lines_and_reports_bad_rows_by_line(app, tmp_path, frozen_clock):
    frozen_clock(T0)
    product = make_product(price_fen=1000)
    at = T0.isoformat()
    rows = [
        f"C1,paid,1,{at},,,1,{product.id},,1000,",  # line 2
        f"C1,paid,1,{at},,,2,,{product.external_id},500,",  # line 3: same order, by external id
        f"C2,paid,1,{at},,,1,{product.id},,-5,",  # line 4: bad amount
        f"C3,paid,1,{at},,,1,{product.id},,1000,",  # line 5
        f"C3,paid,1,{at},,,2,{product.id},,lots,",  # line 6: bad amount on the second line rejects C3
        f"C4,refunded,2,{at},,,1,{product.id},,1000,400",  # line 7
        f"C5,paid,1,{at},,,1,{product.id},,1000,",  # line 8
        f"C5,completed,1,{at},,,2,{product.id},,1000,",  # line 9: order columns disagree: C5 rejected
        f"C6,paid,1,{at},,,1,999999,,1000,",  # line 10: unknown product
        f"C1,paid,1,{at},,,3,{product.id},,1,",  # line 11: C1 again, not consecutive
    ]
    statement = tmp_path / "statement.csv"
    statement.write_text(CSV_HEADER + "\n".join(rows) + "\n")
    result = app.test_cli_runner().invoke(args=["orders", "import", str(statement), "--source", "csv-union"])
    assert "created 2, applied 0, stale 0, rejected 5" in result.output, result.output
    for number in (4, 6, 9, 10, 11):
        assert f"line {number}:" in result.output
    assert "line 5:" not in result.output and "line 2:" not in result.output
    c1 = db.session.scalar(select(Order).where(Order.external_id == "C1"))
    assert (c1.paid_fen, len(orders.lines_of(order_id=c1.id))) == (1500, 2)
    c4 = db.session.scalar(select(Order).where(Order.external_id == "C4"))
    assert (c4.status, c4.refunded_fen, c4.version) == ("refunded", 400, 2)
    again = app.test_cli_runner().invoke(args=["orders", "import", str(statement), "--source", "csv-union"])
    assert "created 0, applied 0, stale 2, rejected 5" in again.output


def test_csv_numbers_in_other_scripts_are_bad_rows(frozen_clock):
    frozen_clock(T0)
    product = make_product(price_fen=1000)
    at = T0.isoformat()
    rows = [
        f"N1,paid,1,{at},,,1,{product.id},,\u00b2,",  # line 2: "²" is a digit to str.isdigit(), not to int()
        f"N2,paid,\u0663,{at},,,1,{product.id},,1000,",  # line 3: an Arabic-Indic three
        f"N3,paid,1,{at},,,1,{product.id},,--5,",  # line 4
        f"N4,paid,1,{at},,,1,{product.id},,1000,",
    ]
    report = importing.import_file(stream=io.StringIO(CSV_HEADER + "\n".join(rows) + "\n"), source="u", fmt="csv")
    assert report.created == 1 and [n for n, _ in report.errors] == [2, 3, 4]


def test_a_row_timed_beyond_any_real_order_is_a_bad_row(frozen_clock):
    frozen_clock(T0)
    product = make_product(price_fen=1000)
    rows = [
        {
            "external_id": f"F{n}",
            "status": "paid",
            "version": 1,
            "event_at": at,
            "lines": [{"line_id": "1", "product_id": product.id, "paid_fen": 1000}],
        }
        for n, at in enumerate(("0001-01-01T00:00:00+00:00", T0.isoformat(), "9999-12-31T23:00:00-05:00"))
    ]
    report = importing.import_file(stream=io.StringIO("\n".join(json.dumps(r) for r in rows)), source="u")
    assert report.created == 1 and [n for n, _ in report.errors] == [1, 3]


def test_a_line_not_in_utf8_or_nested_too_deep_is_a_bad_row(app, tmp_path, frozen_clock):
    frozen_clock(T0)
    product = make_product(price_fen=1000)

    def row(external_id: str) -> bytes:
        return json.dumps(
            {
                "external_id": external_id,
                "status": "paid",
                "version": 1,
                "event_at": T0.isoformat(),
                "lines": [{"line_id": "1", "product_id": product.id, "paid_fen": 1000}],
            },
            ensure_ascii=False,
        ).encode("utf-8")

    statement = tmp_path / "statement.jsonl"
    # A line in GBK, then one nested past the JSON decoder's recursion limit.
    statement.write_bytes(
        b"\n".join([row("U1"), row("订单").decode().encode("gbk"), row("U3"), b"[" * 100_000]) + b"\n"
    )
    result = app.test_cli_runner().invoke(args=["orders", "import", str(statement), "--source", "u"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "line 2:" in result.output and "line 4:" in result.output
    assert "created 2, applied 0, stale 0, rejected 2" in result.output


@pytest.mark.parametrize("source, code", [("x" * 33, "source_name_invalid"), ("own", "source_reserved")])
def test_a_statement_from_a_source_no_union_may_have_is_refused_whole(app, tmp_path, frozen_clock, source, code):
    frozen_clock(T0)
    product = make_product(price_fen=1000)
    statement = tmp_path / "statement.jsonl"
    statement.write_text(
        json.dumps(
            {
                "external_id": "S1",
                "status": "paid",
                "version": 1,
                "event_at": T0.isoformat(),
                "lines": [{"line_id": "1", "product_id": product.id, "paid_fen": 1000}],
            }
        )
        + "\n"
    )
    # Too long for the column (PostgreSQL refused the COPY mid-import); "own" is the checkout's.
    result = app.test_cli_runner().invoke(args=["orders", "import", str(statement), "--source", source])
    assert result.exit_code == 1 and code in result.output, (result.output, repr(result.exception))
    assert _count(Order) == 0


def test_csv_statement_with_unknown_columns_is_refused_whole(tmp_path, frozen_clock):
    frozen_clock(T0)
    report = importing.import_file(stream=io.StringIO("external_id,colour\nX,red\n"), source="u", fmt="csv")
    assert report.created == 0 and report.errors == [(1, "unknown columns: colour")]


def test_a_newer_row_refunding_more_than_was_paid_is_reported_and_its_neighbours_kept(frozen_clock):
    frozen_clock(T0)
    product = make_product(price_fen=1000)

    def row(external_id, version, status="paid", **line):
        return json.dumps(
            {
                "external_id": external_id,
                "status": status,
                "version": version,
                "event_at": T0.isoformat(),
                "lines": [{"line_id": "1", "product_id": product.id, "paid_fen": 1000, **line}],
            }
        )

    importing.import_file(stream=io.StringIO("\n".join([row("A", 1), row("B", 1)])), source="u")
    # A's newer row says 3000 was paid and 2000 refunded: on record 1000 was paid, so the row is refused whole.
    newer = "\n".join(
        [row("A", 2, "refunded", paid_fen=3000, refunded_fen=2000), row("B", 2, "refunded", refunded_fen=400)]
    )
    report = importing.import_file(stream=io.StringIO(newer), source="u")
    assert (report.applied, [(n, e["code"]) for n, e in report.errors]) == (1, [(1, "refund_exceeds_paid")])
    a, b = (db.session.scalar(select(Order).where(Order.external_id == x)) for x in ("A", "B"))
    assert (a.version, a.refunded_fen, b.version, b.refunded_fen) == (1, 0, 2, 400)
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}


def test_an_orders_whole_history_in_one_statement_gives_what_its_webhooks_give(api, client, frozen_clock):
    frozen_clock(T0 - timedelta(hours=1))
    product = make_product(price_fen=1000)
    sharer, _ = user_id(api, "sharer")
    buyer, _ = user_id(api, "buyer")
    _click(affiliate.create_share_link(sharer_id=sharer, product_id=product.id).code, buyer, T0 - timedelta(hours=1))
    frozen_clock(T0 + timedelta(days=8))

    def event(version, status, at, **line):
        return {
            "external_id": "H1",
            "status": status,
            "version": version,
            "event_at": at.isoformat(),
            "buyer_id": buyer,
            "lines": [{"line_id": "1", "product_id": product.id, "paid_fen": 1000, **line}],
        }

    # Paid an hour after the click, completed a day later, partly refunded a week after that (the click long gone).
    history = [
        event(1, "paid", T0),
        event(2, "completed", T0 + timedelta(days=1)),
        event(3, "refunded", T0 + timedelta(days=8), refunded_fen=400),
    ]
    report = importing.import_file(
        stream=io.StringIO("\n".join(json.dumps(e) for e in reversed(history))), source="bulk"
    )
    assert (report.created, report.applied, report.stale, report.errors) == (1, 2, 0, [])
    secret = webhooks.add_source(name="hook").secret
    for n, order in enumerate(history):
        body = json.dumps({"event_id": f"e{n}", "order": order}).encode()
        assert (
            client.post("/api/v1/webhooks/orders/hook", data=body, headers=sign_headers(secret, body)).status_code
            == 200
        )
    assert _outcome("bulk", "H1") == _outcome("hook", "H1")
    bulk, hook = (db.session.scalar(select(Order).where(Order.source == s)) for s in ("bulk", "hook"))
    assert (bulk.paid_at, bulk.completed_at) == (hook.paid_at, hook.completed_at) == (T0, T0 + timedelta(days=1))
    assert {a["rule"] for a in affiliate.attributions_of_order(order_id=bulk.id)} == {"click"}
    frozen_clock(T0 + timedelta(days=8))
    assert order_flows.settle_due() == 2
    assert ledger.balances(owner_id=sharer)["available"] == 2 * (50 - 20)
    assert ledger.verify() == {"unbalanced_journals": [], "balance_drift": []}
