"""Feeds of member posts: by group, by linked product and by child age band; newest or popular first.

Feed pages are the same for everyone, so each rendered page is kept in Redis for CONTENT_FEED_CACHE_SECONDS
(app.core.pagecache), stamped with the generation numbers of the feeds it shows (every post; or its group,
product and age band) and served only while those are unchanged. Publishing, hiding, restoring, rejecting or
taking down a post bumps the generations of exactly the feeds the post appears in, so the change shows at once
there while other feeds keep their cached pages. View counts and the popular order may lag by the cache time.

On PostgreSQL a page's rows come back as their JSON text, product cards included (PostSchema's shape), so a page
is joined, not decoded, converted and encoded again in Python.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from flask import current_app
from marshmallow import fields
from sqlalchemy import Row, Select, Text, bindparam, cast, false, func, literal_column, select, tuple_

from app.catalog import service as catalog
from app.content.models import AGE_BAND_MONTHS, MemberPost, MemberPostProduct
from app.content.schemas import PostSchema
from app.core import pagecache
from app.core.db import after_commit, db, is_postgres, isoformat_sql, reads_outside_transaction
from app.core.pagination import compact_json, decode_cursor, encode_cursor, page_json
from app.core.redis import key

# What a post row shows (PostSchema without its product cards), and what its cards need.
POST_FIELDS = tuple(name for name in PostSchema().fields if name != "products")
ROW_FIELDS = (*POST_FIELDS, "product_ids", "share_codes")
FEED_COLUMNS = [MemberPost.__table__.c[name] for name in ROW_FIELDS]
DATETIME_FIELDS = tuple(name for name, field in PostSchema().fields.items() if isinstance(field, fields.DateTime))
EVERY_POST = key("content", "feed-generation", "all")

# A post's cards as product_cards() and shape_posts() make them: its products still on sale, in its order, each
# with the share code at the same position.
CARDS_SQL = """(SELECT coalesce(json_agg(json_build_object('product_id', p.id, 'title', p.title, 'image', p.images ->> 0,
                                                 'price_fen', p.price_fen, 'share_code', codes.code) ORDER BY ids.n), '[]')
 FROM json_array_elements_text(member_posts.product_ids) WITH ORDINALITY AS ids (id, n)
 JOIN products AS p ON p.id = ids.id::bigint AND p.is_active
 LEFT JOIN json_array_elements_text(CASE WHEN json_typeof(member_posts.share_codes) = 'array'
                                         THEN member_posts.share_codes END) WITH ORDINALITY AS codes (code, n)
   ON codes.n = ids.n)"""

# name: (sort column, its Python type); newest or most popular first, the id breaking ties.
SORTS = {"newest": ("published_at", datetime), "popular": ("score", int)}


@dataclass(frozen=True)
class FeedPage:
    items: list
    cards: dict[int, dict]
    next_cursor: str | None


def product_cards(*, posts: list) -> dict[int, dict]:
    """The cards of the posts' linked products still on sale, keyed by product id (one catalog query)."""
    return catalog.product_cards(product_ids=[pid for post in posts for pid in post.product_ids])


def _post_json():
    posts = MemberPost.__table__.c
    pairs = [
        (literal_column(f"'{name}'"), isoformat_sql(posts[name]) if name in DATETIME_FIELDS else posts[name])
        for name in POST_FIELDS
    ]
    parts = [part for pair in pairs for part in pair] + [literal_column("'products'"), literal_column(CARDS_SQL)]
    return cast(func.json_build_object(*parts), Text).label("json")


@cache
def _page_statement(
    sort: str, by_group: bool, by_product: bool, by_band: bool, from_cursor: bool, rendered: bool
) -> Select:
    """The feed query of one shape, built once (bound parameters; no SQL construction per request)."""
    posts = MemberPost.__table__.c
    order = (posts[SORTS[sort][0]], posts.id)
    columns = [_post_json(), order[0].label("sort_key"), posts.id] if rendered else FEED_COLUMNS
    stmt = select(*columns).where(posts.status == "published", posts.hidden == false())
    if by_group:
        stmt = stmt.where(posts.group_id == bindparam("group_id"))
    if by_product:
        stmt = stmt.where(
            posts.id.in_(
                select(MemberPostProduct.post_id).where(MemberPostProduct.product_id == bindparam("product_id"))
            )
        )
    if by_band:
        stmt = stmt.where(posts.min_age_months <= bindparam("high"), posts.max_age_months >= bindparam("low"))
    if from_cursor:
        # A row-value comparison is a range of the feed index (see app.core.pagination.after_cursor).
        stmt = stmt.where(tuple_(*order) < tuple_(*[bindparam(f"after_{c.key}", type_=c.type) for c in order]))
    return stmt.order_by(*[c.desc() for c in order]).limit(bindparam("limit"))


def _page_rows(
    *,
    group_id: int | None,
    product_id: int | None,
    age_band: str | None,
    sort: str,
    cursor: str | None,
    limit: int,
    rendered: bool,
) -> tuple[list[Row], str | None]:
    column, kind = SORTS[sort]
    params = {"group_id": group_id, "product_id": product_id, "limit": limit + 1}
    if age_band is not None:
        params["low"], params["high"] = AGE_BAND_MONTHS[age_band]
    if cursor:
        params[f"after_{column}"], params["after_id"] = decode_cursor(cursor, [kind, int])
    stmt = _page_statement(
        sort, group_id is not None, product_id is not None, age_band is not None, cursor is not None, rendered
    )
    # Plain rows through the connection: the ORM's bookkeeping would cost more than the query.
    rows = db.session.connection().execute(stmt, params).all()
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor([last.sort_key if rendered else getattr(last, column), last.id]) if last else None
    return rows[:limit], next_cursor


def feed(
    *, group_id: int | None, product_id: int | None, age_band: str | None, sort: str, cursor: str | None, limit: int
) -> FeedPage:
    """Published posts nobody's reports have hidden, filtered and sorted, one cursor page at a time."""
    items, next_cursor = _page_rows(
        group_id=group_id,
        product_id=product_id,
        age_band=age_band,
        sort=sort,
        cursor=cursor,
        limit=limit,
        rendered=False,
    )
    return FeedPage(items=items, cards=product_cards(posts=items), next_cursor=next_cursor)


def shape_posts(posts: list, cards: dict[int, dict]) -> list[dict]:
    """Posts (rows or models) as response rows, each with the cards of its products on sale and their share codes."""
    shaped = []
    for post in posts:
        row = post._asdict() if isinstance(post, Row) else {name: getattr(post, name) for name in ROW_FIELDS}
        product_ids = row.pop("product_ids")
        codes = dict(zip(product_ids, row.pop("share_codes") or []))
        row["products"] = [cards[pid] | {"share_code": codes.get(pid)} for pid in product_ids if pid in cards]
        shaped.append(row)
    return shaped


def _generations_read_by(group_id: int | None, product_id: int | None, age_band: str | None) -> list[str]:
    """A filtered page shows posts of its group, product and band: a change elsewhere leaves it as it is."""
    scopes = [("group", group_id), ("product", product_id), ("age-band", age_band)]
    keys = [key("content", "feed-generation", name, value) for name, value in scopes if value is not None]
    return keys or [EVERY_POST]


def _generations_bumped_by(post: MemberPost) -> list[str]:
    keys = [EVERY_POST]
    if post.group_id is not None:
        keys.append(key("content", "feed-generation", "group", post.group_id))
    keys += [key("content", "feed-generation", "product", pid) for pid in post.product_ids]
    if post.min_age_months is not None and post.max_age_months is not None:
        keys += [
            key("content", "feed-generation", "age-band", band)
            for band, (low, high) in AGE_BAND_MONTHS.items()
            if post.min_age_months <= high and post.max_age_months >= low
        ]
    return keys


def post_changed(*, post: MemberPost) -> None:
    """Make the cached pages of every feed showing (or now not showing) `post` stale once the change commits."""
    generations = _generations_bumped_by(post)
    after_commit(lambda: pagecache.bump(generations))


def _render(
    *, group_id: int | None, product_id: int | None, age_band: str | None, sort: str, cursor: str | None, limit: int
) -> str:
    if is_postgres():
        with reads_outside_transaction():
            rows, next_cursor = _page_rows(
                group_id=group_id,
                product_id=product_id,
                age_band=age_band,
                sort=sort,
                cursor=cursor,
                limit=limit,
                rendered=True,
            )
        return page_json([row.json for row in rows], next_cursor)
    page = feed(group_id=group_id, product_id=product_id, age_band=age_band, sort=sort, cursor=cursor, limit=limit)
    # In the shape of PostSchema (which documents it), as the SQL path writes it: a schema dump costs more.
    items = shape_posts(page.items, page.cards)
    for item in items:
        for name in DATETIME_FIELDS:
            if item[name] is not None:
                item[name] = item[name].isoformat()
    return page_json([compact_json(item) for item in items], page.next_cursor)


def feed_json(
    *,
    group_id: int | None,
    product_id: int | None,
    age_band: str | None,
    sort: str,
    cursor: str | None,
    limit: int,
    page_key: bytes,
) -> str:
    """One feed page rendered as JSON, kept in the short-lived page cache under `page_key` while current."""
    return pagecache.cached(
        cache_key=page_key,
        generations=_generations_read_by(group_id, product_id, age_band),
        ttl=current_app.config["CONTENT_FEED_CACHE_SECONDS"],
        render=lambda: _render(
            group_id=group_id, product_id=product_id, age_band=age_band, sort=sort, cursor=cursor, limit=limit
        ),
    )
