"""Attribution: who earns on each order line, decided once when the order arrives and then never changed.

Priority, first match wins: (1) the share code the order carries; (2) the buyer's last click on a
share link within the window (default 7 days, both edges included); (3) the buyer's bound referrer.
Otherwise nobody earns and the platform keeps the seller's commission.

Explicit rules on top of the priority:
- The level-2 sharer is the level-1 sharer's own inviter, and only while level-2 is switched on.
- Self-purchase through one's own link earns level-1 (自用省钱); the buyer never earns any other share
  on their own purchase (no host, content or level-2 for buying in one's own group or one's invitee's link).
- Nobody is paid twice for one line: a person holding several roles keeps the first of
  level-1, host, content, level-2; the other shares stay with the platform.
- Cycles in the referral tree cannot occur (binding refuses them), so the level-2 chain always ends.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import insert, select, text

from app.accounts import service as accounts
from app.affiliate import rules
from app.affiliate.commission import SHARES, split
from app.affiliate.models import Attribution, Click, ShareLink
from app.core import pg_copy
from app.core.clock import now_utc
from app.core.db import db, is_postgres


@dataclass
class LineIn:
    order_line_id: int
    product_id: int
    category_id: int | None
    paid_fen: int
    seller_bp: int


@dataclass
class OrderIn:
    order_id: int
    buyer_id: int | None
    tracking_code: str | None
    paid_at: datetime
    lines: list[LineIn] = field(default_factory=list)


LINK_FIELDS = ("sharer_id", "group_id", "post_id", "content_id", "host_id", "content_author_id")
CLICK_FIELDS = ("id", "buyer_id", "clicked_at", "share_link_id", *LINK_FIELDS)


@dataclass
class Found:
    """What the lookups found for one order; `_decide` turns it into the rule that matched."""

    link: dict | None = None  # the share link of the order's tracking code
    link_click: dict | None = None  # the buyer's last click on that link within the window
    last_click: dict | None = None  # the buyer's last click on any link within the window (looked up without a link)
    inviter_id: int | None = None  # the buyer's bound referrer


def window() -> timedelta:
    return timedelta(days=current_app.config["ATTRIBUTION_WINDOW_DAYS"])


def _links_by_code(codes: set[str]) -> dict[str, dict]:
    if not codes:
        return {}
    rows = db.session.execute(
        select(ShareLink.id, ShareLink.code, *(getattr(ShareLink, f) for f in LINK_FIELDS)).where(
            ShareLink.code.in_(codes)
        )
    ).mappings()
    return {row["code"]: dict(row) for row in rows}


def _clicks_by_buyer(orders: list[OrderIn]) -> dict[int, list[dict]]:
    buyers = {o.buyer_id for o in orders if o.buyer_id is not None}
    if not buyers:
        return {}
    start = min(o.paid_at for o in orders) - window()
    end = max(o.paid_at for o in orders)
    rows = db.session.execute(
        select(*(getattr(Click, f) for f in CLICK_FIELDS))
        .where(Click.buyer_id.in_(buyers), Click.clicked_at >= start, Click.clicked_at <= end)
        .order_by(Click.clicked_at, Click.id)
    ).mappings()
    found: dict[int, list[dict]] = {}
    for row in rows:
        found.setdefault(row["buyer_id"], []).append(dict(row))
    return found


def _last_click(clicks: list[dict], paid_at: datetime, link_id: int | None = None) -> dict | None:
    earliest = paid_at - window()
    chosen = None
    for click in clicks:
        if earliest <= click["clicked_at"] <= paid_at and (link_id is None or click["share_link_id"] == link_id):
            chosen = click
    return chosen


def _found_in_python(orders: list[OrderIn]) -> list[Found]:
    """The lookups for a few orders: links and the buyers' clicks loaded once, the window applied per order."""
    links = _links_by_code({o.tracking_code for o in orders if o.tracking_code})
    clicks = _clicks_by_buyer(orders)
    found = []
    for order in orders:
        buyer_clicks = clicks.get(order.buyer_id, [])
        link = links.get(order.tracking_code) if order.tracking_code else None
        if link is not None:
            found.append(Found(link=link, link_click=_last_click(buyer_clicks, order.paid_at, link["id"])))
        else:
            found.append(Found(last_click=_last_click(buyer_clicks, order.paid_at)))
    return found


def _lateral_click(alias: str, link_condition: str) -> str:
    columns = ", ".join(f"c.{f}" for f in CLICK_FIELDS)
    return (
        f"LEFT JOIN LATERAL (SELECT {columns} FROM clicks AS c WHERE {link_condition} AND c.buyer_id = o.buyer_id "
        f"AND c.clicked_at BETWEEN o.since AND o.until ORDER BY c.clicked_at DESC, c.id DESC LIMIT 1) AS {alias} ON true"
    )


_FOUND_SQL = text(
    f"SELECT o.n, l.id, l.code, {', '.join(f'l.{f}' for f in LINK_FIELDS)}, "
    f"{', '.join(f'lc.{f}' for f in CLICK_FIELDS)}, {', '.join(f'ac.{f}' for f in CLICK_FIELDS)} "
    "FROM unnest(CAST(:buyers AS bigint[]), CAST(:codes AS text[]), CAST(:sinces AS timestamptz[]), "
    "CAST(:untils AS timestamptz[])) WITH ORDINALITY AS o(buyer_id, code, since, until, n) "
    "LEFT JOIN share_links AS l ON l.code = o.code "
    f"{_lateral_click('lc', 'l.id IS NOT NULL AND c.share_link_id = l.id')} "
    f"{_lateral_click('ac', 'l.id IS NULL')}"
)


def _found_in_sql(orders: list[OrderIn]) -> list[Found]:
    """The same lookups as one set-based query on PostgreSQL: per order the link of its code, else the
    buyer's last click within the window (LATERAL, served by the (buyer_id, clicked_at) index)."""
    span = window()
    rows = db.session.execute(
        _FOUND_SQL,
        {
            "buyers": [o.buyer_id for o in orders],
            "codes": [o.tracking_code for o in orders],
            "sinces": [o.paid_at - span for o in orders],
            "untils": [o.paid_at for o in orders],
        },
    ).all()
    link_names = ("id", "code", *LINK_FIELDS)
    found = [Found() for _ in orders]
    for row in rows:
        link = row[1 : 1 + len(link_names)]
        link_click = row[1 + len(link_names) : 1 + len(link_names) + len(CLICK_FIELDS)]
        last_click = row[1 + len(link_names) + len(CLICK_FIELDS) :]
        found[row[0] - 1] = Found(
            link=dict(zip(link_names, link)) if link[0] is not None else None,
            link_click=dict(zip(CLICK_FIELDS, link_click)) if link_click[0] is not None else None,
            last_click=dict(zip(CLICK_FIELDS, last_click)) if last_click[0] is not None else None,
        )
    return found


def _decide(found: Found) -> tuple[str, dict, dict | None]:
    """The rule that matched, the link-like context (sharer, group, ...) and the click."""
    if found.link is not None:
        return "tracking_code", found.link, found.link_click
    click = found.last_click
    if click is not None:
        return "click", {"id": click["share_link_id"], **{f: click[f] for f in LINK_FIELDS}}, click
    if found.inviter_id is not None:
        return "referrer", {"id": None, "sharer_id": found.inviter_id}, None
    return "none", {"id": None}, None


def _roles(buyer_id: int | None, context: dict, level2_id: int | None) -> dict[str, int | None]:
    candidates = [
        ("level1", context.get("sharer_id")),
        ("host", context.get("host_id")),
        ("content", context.get("content_author_id")),
        ("level2", level2_id),
    ]
    paid, roles = set(), {}
    for share, person in candidates:
        if person is None or person in paid or (share != "level1" and person == buyer_id):
            roles[share] = None
            continue
        paid.add(person)
        roles[share] = person
    return roles


def _rows(orders: list[OrderIn], found: list[Found]) -> list[dict]:
    """One attribution row per order line: the rule, who earns, the rates in force and the split."""
    inviters = accounts.inviter_ids(user_ids=[o.buyer_id for o in orders if o.buyer_id is not None])
    for order, lookups in zip(orders, found):
        lookups.inviter_id = inviters.get(order.buyer_id)
    decided = [(order, *_decide(lookups)) for order, lookups in zip(orders, found)]
    level2_on = rules.level2_enabled()
    sharers = [context.get("sharer_id") for _, _, context, _ in decided if context.get("sharer_id") is not None]
    level2_of = accounts.inviter_ids(user_ids=sharers) if level2_on else {}
    book = rules.RuleBook(min(o.paid_at for o in orders), max(o.paid_at for o in orders))
    now = now_utc()
    rows = []
    for order, rule, context, click in decided:
        roles = _roles(order.buyer_id, context, level2_of.get(context.get("sharer_id")))
        for line in order.lines:
            rates = book.rates(product_id=line.product_id, category_id=line.category_id, at=order.paid_at)
            used = {share: getattr(rates, f"{share}_bp") if roles[share] is not None else 0 for share in SHARES}
            shares = split(paid_fen=line.paid_fen, seller_bp=line.seller_bp, **{f"{k}_bp": v for k, v in used.items()})
            rows.append(
                {
                    "order_id": order.order_id,
                    "order_line_id": line.order_line_id,
                    "rule": rule,
                    "buyer_id": order.buyer_id,
                    "click_id": click["id"] if click else None,
                    "share_link_id": context.get("id"),
                    "group_id": context.get("group_id"),
                    "post_id": context.get("post_id"),
                    "content_id": context.get("content_id"),
                    "level1_id": roles["level1"],
                    "level2_id": roles["level2"],
                    "host_id": roles["host"],
                    "content_author_id": roles["content"],
                    "commission_rule_id": rates.rule_id,
                    "level2_enabled": level2_on,
                    "base_fen": line.paid_fen,
                    "seller_bp": line.seller_bp,
                    **{f"{share}_bp": used[share] for share in SHARES},
                    "seller_fen": shares.seller_fen,
                    **{f"{share}_fen": shares.amount(share) for share in SHARES},
                    "platform_fen": shares.platform_fen,
                    "created_at": now,
                }
            )
    return rows


def attribute(orders: list[OrderIn], *, set_based: bool = False) -> dict[int, dict]:
    """Decide and store one attribution per order line; returns the rows keyed by order line id.

    `set_based` (statement imports) looks up and writes set-based on PostgreSQL: one LATERAL query,
    ids taken ahead and rows by COPY. The decisions and the arithmetic are the same code either way.
    """
    if not orders:
        return {}
    set_based = set_based and is_postgres()
    rows = _rows(orders, _found_in_sql(orders) if set_based else _found_in_python(orders))
    if set_based:
        ids = pg_copy.allocate_ids(Attribution.__table__, len(rows))
        columns = list(rows[0]) if rows else []
        pg_copy.copy_rows(
            Attribution.__table__,
            ["id", *columns],
            ((attribution_id, *row.values()) for attribution_id, row in zip(ids, rows)),
        )
    else:
        ids = db.session.scalars(
            insert(Attribution).returning(Attribution.id, sort_by_parameter_order=True), rows
        ).all()
    return {row["order_line_id"]: {**row, "id": attribution_id} for attribution_id, row in zip(ids, rows)}
