"""Feeds of member posts: by group, by linked product and by child age band; newest or popular first.

Feed pages are the same for everyone, so each rendered page is kept in Redis for CONTENT_FEED_CACHE_SECONDS.
Publishing, hiding and moderation bump a generation number that is part of the cache key, so those changes
show at once; view counts and popularity order may lag by up to the cache time.
"""
import json
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import false, select

from app.catalog import service as catalog
from app.content.models import AGE_BAND_MONTHS, MemberPost, MemberPostProduct
from app.content.schemas import PostSchema
from app.core.db import db
from app.core.pagination import keyset_page
from app.core.redis import get_redis, key

GENERATION_KEY = key("content", "feed-generation")
POST_FIELDS = tuple(PostSchema().fields)

SORTS = {
    "newest": ((MemberPost.published_at, MemberPost.id), (datetime, int), lambda p: (p.published_at, p.id)),
    "popular": ((MemberPost.score, MemberPost.id), (int, int), lambda p: (p.score, p.id)),
}


@dataclass(frozen=True)
class FeedPage:
    items: list[MemberPost]
    products: dict[int, list]
    next_cursor: str | None


def product_cards(*, posts: list[MemberPost]) -> dict[int, list]:
    """The linked products of each post that are still on sale, in the author's order (one catalog query)."""
    wanted = {pid for post in posts for pid in post.product_ids}
    products = catalog.require_products(product_ids=sorted(wanted)) if wanted else {}
    return {post.id: [products[pid] for pid in post.product_ids if products[pid].is_active] for post in posts}


def feed(*, group_id: int | None, product_id: int | None, age_band: str | None, sort: str, cursor: str | None,
         limit: int) -> FeedPage:
    """Published posts nobody's reports have hidden, filtered and sorted, one cursor page at a time."""
    stmt = select(MemberPost).where(MemberPost.status == "published", MemberPost.hidden == false())
    if group_id is not None:
        stmt = stmt.where(MemberPost.group_id == group_id)
    if product_id is not None:
        stmt = stmt.where(MemberPost.id.in_(select(MemberPostProduct.post_id)
                                            .where(MemberPostProduct.product_id == product_id)))
    if age_band is not None:
        low, high = AGE_BAND_MONTHS[age_band]
        stmt = stmt.where(MemberPost.min_age_months <= high, MemberPost.max_age_months >= low)
    columns, kinds, key_of = SORTS[sort]
    items, next_cursor = keyset_page(stmt, columns=list(columns), kinds=list(kinds), cursor=cursor, limit=limit,
                                     key_of=key_of, session=db.session)
    return FeedPage(items=items, products=product_cards(posts=items), next_cursor=next_cursor)


def card(product, share_code: str | None) -> dict:
    """The product card shown under a post, with the author's share code."""
    return {"product_id": product.id, "title": product.title, "image": (product.images or [None])[0],
            "price_fen": product.price_fen, "share_code": share_code}


def shape_posts(posts: list[MemberPost], cards: dict[int, list]) -> list[dict]:
    """Posts as response rows, each with its product cards."""
    shaped = []
    for post in posts:
        row = {column.key: getattr(post, column.key) for column in post.__table__.columns}
        codes = dict(zip(post.product_ids, post.share_codes or []))
        shaped.append(row | {"products": [card(p, codes.get(p.id)) for p in cards.get(post.id, [])]})
    return shaped


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def bump_generation() -> None:
    """Make every cached feed page stale (after publishing, hiding or moderating a post)."""
    get_redis().incr(GENERATION_KEY)


def feed_json(*, group_id: int | None, product_id: int | None, age_band: str | None, sort: str, cursor: str | None,
              limit: int) -> str:
    """One feed page rendered as JSON, served from the short-lived cache when it holds it."""
    ttl = current_app.config["CONTENT_FEED_CACHE_SECONDS"]
    redis = get_redis()
    cache_key = generation = None
    if ttl > 0:
        # One round trip: the page is stored with the generation it was rendered in and served only while current.
        cache_key = key("content", "feed", group_id, product_id, age_band, sort, cursor or "", limit)
        generation, cached = redis.mget(GENERATION_KEY, cache_key)
        generation = (generation or b"0").decode()
        if cached is not None:
            cached_generation, _, body = cached.decode().partition("|")
            if cached_generation == generation:
                return body
    page = feed(group_id=group_id, product_id=product_id, age_band=age_band, sort=sort, cursor=cursor, limit=limit)
    # Rendered by hand (the shape of PostSchema, which documents it): a schema dump costs more than the SQL.
    items = [{name: _plain(row[name]) for name in POST_FIELDS} for row in shape_posts(page.items, page.products)]
    body = json.dumps({"items": items, "next_cursor": page.next_cursor}, ensure_ascii=False, separators=(",", ":"))
    if cache_key is not None:
        redis.set(cache_key, f"{generation}|{body}", ex=ttl)
    return body
