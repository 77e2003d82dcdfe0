"""Product search: active products by keyword and category, sorted, one keyset page at a time.

A keyword matches when it is a substring of the title or the merchant, ignoring case (ILIKE; LIKE on SQLite,
which ignores ASCII case). A keyword without cased letters (most Chinese ones) is matched with LIKE, which
answers the same and costs PostgreSQL half as much per row as ILIKE's lowercasing.
On PostgreSQL a keyword page first walks the sort order's index for WALK_ROWS rows past the cursor, matching
as it goes: a keyword found in more than about one row in WALK_ROWS / page size fills its page there, so
common keywords (牙刷 in a hundred thousand products) cost about a page's worth of rows whatever their count.
A keyword too rare for that is looked up through the GIN index on the search tokens (app.catalog.tokens);
its candidates are all fetched and sorted, which is few rows for a keyword the walk found so rare. (Only a
common keyword crowded at the far end of the sort order, such as pricey goods sorted cheapest first, costs
its whole match count per page.) The planner is not left to choose: it estimates a multi-token containment
as independent tokens, reckoned 71 rows for 安全座椅's 41,861, and fetched them all for every page.

Statements are built once per shape, with bound parameters, so a search costs no SQL construction.
On PostgreSQL each result row comes back as its JSON text (ProductSchema's shape, date-times in Python's ISO
8601 spelling), so a page is joined, not decoded, converted and encoded again in Python.
"""

from datetime import datetime
from functools import cache

from sqlalchemy import Select, Text, bindparam, cast, func, literal_column, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY

from app.catalog.models import Product
from app.catalog.tokens import keyword_tokens
from app.core.db import UTCDateTime, isoformat_sql
from app.core.pagination import compact_json, decode_cursor, encode_cursor

WALK_ROWS = 2000
# name: (sort column, its Python type, descending); the id breaks ties.
SORTS = {
    "newest": ("created_at", datetime, True),
    "price_asc": ("price_fen", int, False),
    "price_desc": ("price_fen", int, True),
    "commission": ("commission_rate_bp", int, True),
}
# What a result row carries: every column but the tokens.
FIELDS = [column for column in Product.__table__.c if column.key != "search_tokens"]
DATETIME_FIELDS = tuple(column.key for column in FIELDS if isinstance(column.type, UTCDateTime))


def _row_json(columns):
    pairs = [
        (literal_column(f"'{c.key}'"), isoformat_sql(columns[c.key]) if c.key in DATETIME_FIELDS else columns[c.key])
        for c in FIELDS
    ]
    return cast(func.json_build_object(*[part for pair in pairs for part in pair]), Text).label("json")


def _selected(columns, sort: str, rendered: bool) -> list:
    """What a page's rows carry: on PostgreSQL each row's JSON text and its keys, elsewhere every field."""
    if rendered:
        return [_row_json(columns), columns[SORTS[sort][0]].label("sort_key"), columns.id]
    return [columns[c.key] for c in FIELDS]


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _matches(columns, caseless: bool):
    pattern = bindparam("pattern")
    if caseless:
        return columns.title.like(pattern, escape="\\") | columns.merchant.like(pattern, escape="\\")
    return columns.title.ilike(pattern, escape="\\") | columns.merchant.ilike(pattern, escape="\\")


def _ordered(stmt: Select, columns, sort: str) -> Select:
    column, _, descending = SORTS[sort]
    keys = [columns[column], columns.id]
    return stmt.order_by(*[k.desc() if descending else k.asc() for k in keys]).limit(bindparam("limit"))


def _filters(sort: str, *, by_category: bool, from_cursor: bool) -> list:
    column, _, descending = SORTS[sort]
    filters = [Product.is_active.is_(True)]
    if by_category:
        filters.append(Product.category_id == bindparam("category_id"))
    if from_cursor:
        # A row-value comparison is a range of the sort index (see app.core.pagination.after_cursor).
        row = tuple_(Product.__table__.c[column], Product.id)
        bound = tuple_(
            bindparam("after_key", type_=Product.__table__.c[column].type), bindparam("after_id", type_=Product.id.type)
        )
        filters.append(row < bound if descending else row > bound)
    return filters


@cache
def _plain(sort: str, by_category: bool, from_cursor: bool, by_keyword: bool, caseless: bool, rendered: bool) -> Select:
    filters = _filters(sort, by_category=by_category, from_cursor=from_cursor)
    if by_keyword:
        filters.append(_matches(Product.__table__.c, caseless))
    columns = Product.__table__.c
    return _ordered(select(*_selected(columns, sort, rendered)).where(*filters), columns, sort)


@cache
def _walk(sort: str, by_category: bool, from_cursor: bool, caseless: bool) -> Select:
    window = (
        _ordered(
            select(*FIELDS).where(*_filters(sort, by_category=by_category, from_cursor=from_cursor)),
            Product.__table__.c,
            sort,
        )
        .limit(bindparam("walk_rows"))
        .subquery("walk")
    )
    return _ordered(select(*_selected(window.c, sort, True)).where(_matches(window.c, caseless)), window.c, sort)


@cache
def _lookup(sort: str, by_category: bool, from_cursor: bool, caseless: bool) -> Select:
    column = SORTS[sort][0]
    tokens = type_coerce(Product.search_tokens, ARRAY(Text)).contains(bindparam("tokens", type_=ARRAY(Text)))
    # Materialised, so the planner cannot turn the lookup back into a walk of the sort order.
    found = (
        select(Product.id, Product.__table__.c[column])
        .where(
            *_filters(sort, by_category=by_category, from_cursor=from_cursor),
            tokens,
            _matches(Product.__table__.c, caseless),
        )
        .cte("found")
        .prefix_with("MATERIALIZED")
    )
    top = _ordered(select(found.c.id, found.c[column]), found.c, sort).subquery("top")
    columns = Product.__table__.c
    return _ordered(
        select(*_selected(columns, sort, True)).join_from(Product, top, top.c.id == Product.id), columns, sort
    )


def _python_json(row) -> str:
    fields = row._asdict()
    for name in DATETIME_FIELDS:
        fields[name] = fields[name].isoformat()
    return compact_json(fields)


def search(
    *, keyword: str, category_id: int | None, sort: str, cursor: str | None, limit: int, connection, postgres: bool
) -> tuple[list[str], str | None]:
    """One page of active products containing `keyword` (all of them when blank), each as its JSON text, and the
    next page's cursor."""
    column, kind, _ = SORTS[sort]
    # Uncased (Chinese, digits): LIKE is ILIKE there; SQLite's LIKE already ignores ASCII case.
    caseless = keyword.lower() == keyword.upper() or not postgres
    shape = (sort, category_id is not None, cursor is not None)
    params = {"limit": limit + 1, "category_id": category_id}
    if cursor:
        params["after_key"], params["after_id"] = decode_cursor(cursor, [kind, int])
    if keyword:
        params["pattern"] = _like_pattern(keyword)
    if keyword and postgres:
        rows = connection.execute(_walk(*shape, caseless), params | {"walk_rows": WALK_ROWS}).all()
        if len(rows) <= limit:
            rows = connection.execute(_lookup(*shape, caseless), params | {"tokens": keyword_tokens(keyword)}).all()
    else:
        rows = connection.execute(_plain(*shape, bool(keyword), caseless, postgres), params).all()
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor([last.sort_key if postgres else getattr(last, column), last.id]) if last else None
    return [row.json if postgres else _python_json(row) for row in rows[:limit]], next_cursor
