"""Feeds of member posts: by group, by linked product and by child age band; newest or popular first."""
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import false, select

from app.catalog import service as catalog
from app.content.models import AGE_BAND_MONTHS, MemberPost, MemberPostProduct
from app.content.ugc import products_of
from app.core.db import db
from app.core.pagination import keyset_page

SORTS = {
    "newest": ((MemberPost.published_at, MemberPost.id), (datetime, int), lambda p: (p.published_at, p.id)),
    "popular": ((MemberPost.score, MemberPost.id), (int, int), lambda p: (p.score, p.id)),
}


@dataclass(frozen=True)
class FeedPage:
    items: list[MemberPost]
    products: dict[int, list]
    next_cursor: str | None


def product_cards(*, post_ids: list[int]) -> dict[int, list]:
    """The linked products of each post that are still on sale, in the author's order."""
    linked = products_of(post_ids=post_ids)
    wanted = {pid for ids in linked.values() for pid in ids}
    if not wanted:
        return {post_id: [] for post_id in post_ids}
    products = catalog.require_products(product_ids=sorted(wanted))
    return {post_id: [products[pid] for pid in ids if products[pid].is_active] for post_id, ids in linked.items()}


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
    return FeedPage(items=items, products=product_cards(post_ids=[p.id for p in items]), next_cursor=next_cursor)
