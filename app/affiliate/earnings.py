"""A user's earnings: totals per state and per share, and every ledger entry with the reason behind it."""

from app.affiliate import service as affiliate
from app.catalog import service as catalog
from app.ledger import service as ledger
from app.orders import service as orders

SHARE_PEOPLE = {"level1": "level1_id", "level2": "level2_id", "host": "host_id", "content": "content_author_id"}


def summary(*, user_id: int) -> dict:
    """Balances per state (pending, available, withdrawing, withdrawn) and net earnings per share."""
    return {"balances": ledger.balances(owner_id=user_id), "by_share": ledger.earnings_by_share(owner_id=user_id)}


def _why(entry: dict, attribution: dict | None, order: dict | None, line: dict | None, product) -> dict:
    share = entry["share"]
    trace = {
        "journal_id": entry["journal_id"],
        "journal_kind": entry["journal_kind"],
        "reason": entry["reason"],
        "withdrawal_id": entry["withdrawal_id"],
        "order": None,
        "line": None,
        "attribution": None,
    }
    if order is not None:
        trace["order"] = {
            "id": order["id"],
            "source": order["source"],
            "external_id": order["external_id"],
            "status": order["status"],
            "paid_at": order["paid_at"],
        }
    if line is not None:
        trace["line"] = {
            "id": line["id"],
            "product_id": line["product_id"],
            "product_title": product.title if product else None,
            "quantity": line["quantity"],
            "paid_fen": line["paid_fen"],
            "refunded_fen": line["refunded_fen"],
        }
    if attribution is not None:
        trace["attribution"] = {
            "id": attribution["id"],
            "rule": attribution["rule"],
            "click_id": attribution["click_id"],
            "share_link_id": attribution["share_link_id"],
            "group_id": attribution["group_id"],
            "post_id": attribution["post_id"],
            "content_id": attribution["content_id"],
            "commission_rule_id": attribution["commission_rule_id"],
            "base_fen": attribution["base_fen"],
            "rate_bp": attribution.get(f"{share}_bp") if share in SHARE_PEOPLE else None,
            "share_fen": attribution.get(f"{share}_fen") if share in SHARE_PEOPLE else None,
        }
    return trace


def entries(*, user_id: int, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """The user's ledger entries, newest first, each with its why-trace (order, line, product, click, rule, rate)."""
    rows, next_cursor = ledger.entries(owner_id=user_id, cursor=cursor, limit=limit)
    attributions = affiliate.attributions_by_id(
        attribution_ids=[r["attribution_id"] for r in rows if r["attribution_id"]]
    )
    order_rows = orders.order_summaries(order_ids=[r["order_id"] for r in rows if r["order_id"]])
    lines = orders.line_summaries(line_ids=[r["order_line_id"] for r in rows if r["order_line_id"]])
    products = catalog.products_by_id(product_ids=[line["product_id"] for line in lines.values()])
    items = []
    for row in rows:
        line = lines.get(row["order_line_id"])
        items.append(
            {
                "id": row["id"],
                "amount_fen": row["amount_fen"],
                "account": row["account"],
                "share": row["share"],
                "created_at": row["created_at"],
                "why": _why(
                    row,
                    attributions.get(row["attribution_id"]),
                    order_rows.get(row["order_id"]),
                    line,
                    products.get(line["product_id"]) if line else None,
                ),
            }
        )
    return items, next_cursor
