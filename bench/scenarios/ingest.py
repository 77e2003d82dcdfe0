"""Order ingestion: 100,000 orders through the real path (statement import → attribution → ledger).

A generator prepares, by COPY, a 100,000-user referral tree, 1,000 products, 20,000 share links and
100,000 clicks. The orders (a third carrying a share code, the rest attributed by click or referrer)
are written as a JSON-lines statement and ingested by `app.orders.importing.import_file`, the code
behind `flask orders import`: validation, batches of 5,000, one transaction per batch, attribution
with the rules in force, the paid journal of every order with its ledger lines and balances.
Baseline in the same run: a raw COPY of the same order rows into an indexed table. Target ≥ 0.25.
The same statement is then imported again: it must add zero rows and zero journals (reported).
"""

import io
import json
import random
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

ORDERS = 100_000
USERS = 100_000
PRODUCTS = 1_000
LINKS = 20_000
CLICKS = 100_000
TARGET_RATIO = 0.25
SOURCE = "bench-union"


def _copy(conn, table: str, columns: list[str], rows) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _generate(ctx, now: datetime, rng: random.Random) -> list[dict]:
    from app.catalog.tokens import search_tokens
    from app.core.db import db

    with ctx.app.app_context():
        raw = db.engine.raw_connection()
        conn = raw.driver_connection
        # Other scenarios of the same run may have made rows already: generated ids start above theirs.
        u0, p0, l0 = (
            conn.execute(f"SELECT coalesce(max(id), 0) FROM {t}").fetchone()[0]
            for t in ("users", "products", "share_links")
        )
        _copy(
            conn,
            "users",
            ["id", "openid", "nickname", "invite_code", "inviter_id", "bound_at", "created_at"],
            (
                (
                    u0 + i,
                    f"bench-u{i}",
                    f"u{i}",
                    f"B{i:07d}",
                    u0 + rng.randint(1, i - 1) if i > 1 and rng.random() < 0.9 else None,
                    now,
                    now,
                )
                for i in range(1, USERS + 1)
            ),
        )
        _copy(
            conn,
            "products",
            [
                "id",
                "source",
                "external_id",
                "title",
                "description",
                "images",
                "price_fen",
                "commission_rate_bp",
                "merchant",
                "is_breastmilk_substitute",
                "is_active",
                "search_tokens",
                "created_at",
                "updated_at",
            ],
            (
                (
                    p0 + i,
                    "union",
                    f"bp{i}",
                    f"商品{i}",
                    "",
                    "[]",
                    rng.randint(500, 50_000),
                    rng.choice([800, 1500, 2000]),
                    "",
                    False,
                    True,
                    search_tokens(f"商品{i}", ""),
                    now,
                    now,
                )
                for i in range(1, PRODUCTS + 1)
            ),
        )
        links = [
            (
                l0 + i,
                f"bl{i:06d}",
                u0 + rng.randint(1, USERS),
                p0 + rng.randint(1, PRODUCTS),
                rng.randint(1, 5000),
                u0 + rng.randint(1, USERS) if rng.random() < 0.3 else None,
                now,
            )
            for i in range(1, LINKS + 1)
        ]
        _copy(
            conn, "share_links", ["id", "code", "sharer_id", "product_id", "group_id", "host_id", "created_at"], links
        )
        _copy(
            conn,
            "clicks",
            [
                "stream_id",
                "share_link_id",
                "code",
                "sharer_id",
                "product_id",
                "group_id",
                "host_id",
                "buyer_id",
                "via",
                "clicked_at",
            ],
            (
                (
                    f"bench-{n}",
                    link[0],
                    link[1],
                    link[2],
                    link[3],
                    link[4],
                    link[5],
                    u0 + rng.randint(1, USERS),
                    "app",
                    now - timedelta(minutes=rng.randint(1, 3 * 24 * 60)),
                )
                for n, link in ((n, links[rng.randrange(LINKS)]) for n in range(CLICKS))
            ),
        )
        for table in ("users", "products", "share_links", "clicks"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.execute("ANALYZE")
        conn.commit()
        raw.close()
    orders = []
    for n in range(ORDERS):
        lines = [
            {
                "line_id": str(k),
                "product_id": p0 + rng.randint(1, PRODUCTS),
                "quantity": 1,
                "paid_fen": rng.randint(500, 50_000),
            }
            for k in range(1, rng.choice([1, 1, 1, 2]) + 1)
        ]
        orders.append(
            {
                "external_id": f"BO{n}",
                "status": "paid",
                "version": 1,
                "event_at": now.isoformat(),
                "buyer_id": u0 + rng.randint(1, USERS),
                "lines": lines,
                "tracking_code": links[rng.randrange(LINKS)][1] if rng.random() < 0.33 else None,
            }
        )
    return orders


def _copy_baseline(ctx, orders: list[dict], now: datetime) -> float:
    from app.core.db import db

    with ctx.app.app_context():
        raw = db.engine.raw_connection()
        conn = raw.driver_connection
        conn.execute(
            "CREATE TABLE bench_orders_copy (source text, external_id text, buyer_id bigint, tracking_code text,"
            " status text, paid_fen bigint, version bigint, paid_at timestamptz, UNIQUE (source, external_id))"
        )
        conn.commit()
        started = time.perf_counter()
        _copy(
            conn,
            "bench_orders_copy",
            ["source", "external_id", "buyer_id", "tracking_code", "status", "paid_fen", "version", "paid_at"],
            (
                (
                    SOURCE,
                    o["external_id"],
                    o["buyer_id"],
                    o["tracking_code"],
                    o["status"],
                    sum(line["paid_fen"] for line in o["lines"]),
                    o["version"],
                    now,
                )
                for o in orders
            ),
        )
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_orders_copy")
        conn.commit()
        raw.close()
    return len(orders) / elapsed


def _counts(ctx) -> dict:
    from app.core.db import db

    with ctx.app.app_context():
        tables = ("orders", "order_lines", "order_events", "attributions", "ledger_journals", "ledger_lines")
        counts = {t: db.session.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in tables}
        db.session.remove()
        return counts


def _import(ctx, statement: str):
    from app.core.db import db
    from app.orders import importing

    with ctx.app.app_context():
        started = time.perf_counter()
        report = importing.import_file(stream=io.StringIO(statement), source=SOURCE)
        elapsed = time.perf_counter() - started
        db.session.remove()
    return report, elapsed


def run(ctx) -> list[dict]:
    rng = random.Random(20261122)
    now = datetime.now(UTC)
    orders = _generate(ctx, now, rng)
    statement = "\n".join(json.dumps(o) for o in orders) + "\n"
    copy_rps = _copy_baseline(ctx, orders, now)
    report, elapsed = _import(ctx, statement)
    first = _counts(ctx)
    replay, replay_elapsed = _import(ctx, statement)
    second = _counts(ctx)
    added = {t: second[t] - first[t] for t in first}
    with ctx.app.app_context():
        from app.ledger import service as ledger

        problems = ledger.verify()
    ok_data = (
        report.created == ORDERS
        and not report.errors
        and replay.stale == ORDERS
        and not any(added.values())
        and not problems["unbalanced_journals"]
        and not problems["balance_drift"]
    )
    return [
        ctx.line(
            "ingest",
            ORDERS / elapsed,
            "orders/s",
            copy_rps,
            TARGET_RATIO,
            ok=None if ok_data else False,
            seconds=round(elapsed, 1),
            rows_written=first,
            rows_per_order=round(sum(first.values()) / ORDERS, 2),
            replay_seconds=round(replay_elapsed, 1),
            replay_added=added,
            replay_stale=replay.stale,
            errors=len(report.errors),
        )
    ]
