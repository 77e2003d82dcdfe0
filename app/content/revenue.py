"""Content revenue share: content ids for share links, who a link credits, and authors' and partners' figures.

Every piece of content that can earn (a member post, a knowledge point) gets one content item id; share
links made for its cards carry it as content_id and its author as content_author_id, so the affiliate
attribution pays the content share to the author on top of the sharer's commission. A member post's own
cards are the author's links (she recommended the products); a member re-sharing a post gets links of her
own with the author kept (`app.content.flows`). Knowledge-point cards posted into a group are the host's
links with the partner as content author (made by the delivery domain when the post goes out).
"""

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app.affiliate import service as affiliate
from app.content import pgc
from app.content.models import ContentItem, DripSent, KnowledgePoint, MemberPost
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Invalid, NotFound
from app.core.pagination import keyset_page
from app.groups import service as groups


def content_item_id(*, kind: str, ref_id: int, author_id: int) -> int:
    """The content id of a post or point, created on first use."""
    found = db.session.scalar(select(ContentItem.id).filter_by(kind=kind, ref_id=ref_id))
    if found is not None:
        return found
    try:
        with db.session.begin_nested():
            item = ContentItem(kind=kind, ref_id=ref_id, author_id=author_id, created_at=now_utc())
            db.session.add(item)
        return item.id
    except IntegrityError:
        return db.session.scalar(select(ContentItem.id).filter_by(kind=kind, ref_id=ref_id))


def _shareable_source(item: ContentItem | None) -> MemberPost | KnowledgePoint | None:
    """The post or point behind a content item while members may share it: a visible post, an approved point."""
    if item is None:
        return None
    if item.kind == "member_post":
        post = db.session.get(MemberPost, item.ref_id)
        return post if post is not None and post.status == "published" and not post.hidden else None
    point = db.session.get(KnowledgePoint, item.ref_id)
    return point if point is not None and point.status == "approved" else None


def _carried(*, item: ContentItem, post_id: int, group_id: int | None) -> bool:
    # Delivery posts carry content only as knowledge points, recorded per group as they go out (fixed or drip).
    return (
        item.kind == "knowledge_point"
        and db.session.scalar(
            select(DripSent.id)
            .where(
                DripSent.post_id == post_id, DripSent.group_id == group_id, DripSent.knowledge_point_id == item.ref_id
            )
            .limit(1)
        )
        is not None
    )


def link_author(*, content_id: int, product_id: int, post_id: int | None, group_id: int | None) -> int:
    """The author a member's own link for this content credits: content that recommends the product (and the post carried)."""
    item = db.session.get(ContentItem, content_id)
    source = _shareable_source(item)
    if source is None:
        raise NotFound("No such content.", code="content_not_found")
    if product_id not in (source.product_ids or []):
        raise Invalid(
            "The content does not recommend this product.",
            code="product_not_in_content",
            errors={"product_id": ["Not a product of the content."]},
        )
    if post_id is not None and not _carried(item=item, post_id=post_id, group_id=group_id):
        raise Invalid(
            "The post did not carry this content into the group.",
            code="content_not_in_post",
            errors={"content_id": ["Not the content of the post."]},
        )
    return item.author_id


def view_knowledge_point(*, knowledge_point_id: int) -> KnowledgePoint:
    """An approved knowledge point opened in the mini-program (the view is counted)."""
    point = pgc.postable_knowledge_point(knowledge_point_id=knowledge_point_id)
    db.session.execute(
        update(KnowledgePoint)
        .where(KnowledgePoint.id == knowledge_point_id)
        .values(view_count=KnowledgePoint.view_count + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(point)
    return point


def _with_figures(rows: list[dict], kind: str) -> list[dict]:
    ids = (
        dict(
            db.session.execute(
                select(ContentItem.ref_id, ContentItem.id).where(
                    ContentItem.kind == kind, ContentItem.ref_id.in_([r["id"] for r in rows])
                )
            ).all()
        )
        if rows
        else {}
    )
    figures = affiliate.content_figures(content_ids=list(ids.values()))
    empty = {"clicks": 0, "orders": 0, "gmv_fen": 0, "content_fen": 0}
    for row in rows:
        found = figures.get(ids.get(row["id"]), empty)
        row.update(
            clicks=found["clicks"], orders=found["orders"], gmv_fen=found["gmv_fen"], earnings_fen=found["content_fen"]
        )
    return rows


def author_dashboard(*, author_id: int, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """Per published (or once published) post of the author: views, clicks, orders, GMV and content earnings."""
    stmt = select(MemberPost).where(MemberPost.author_id == author_id, MemberPost.published_at.is_not(None))
    posts, next_cursor = keyset_page(
        stmt,
        columns=[MemberPost.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda p: (p.id,),
        session=db.session,
    )
    rows = [
        {"id": p.id, "title": p.text[:40], "status": p.status, "reach": p.view_count, "views": p.view_count}
        for p in posts
    ]
    return _with_figures(rows, "member_post"), next_cursor


def partner_dashboard(*, partner_id: int, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """Per knowledge point of the partner: reach (groups' members at each delivery), views, clicks, orders, GMV, earnings."""
    stmt = select(KnowledgePoint).where(KnowledgePoint.partner_id == partner_id)
    points, next_cursor = keyset_page(
        stmt,
        columns=[KnowledgePoint.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda p: (p.id,),
        session=db.session,
    )
    sends = (
        db.session.execute(
            select(DripSent.knowledge_point_id, DripSent.group_id, func.count())
            .where(DripSent.knowledge_point_id.in_([p.id for p in points]))
            .group_by(DripSent.knowledge_point_id, DripSent.group_id)
        ).all()
        if points
        else []
    )
    # Reach counts each group's members now (the groups domain keeps no member history).
    briefs = groups.group_briefs(group_ids=[group_id for _, group_id, _ in sends])
    members = {group_id: brief.member_count for group_id, brief in briefs.items()}
    reach: dict[int, int] = {}
    deliveries: dict[int, int] = {}
    for point_id, group_id, count in sends:
        reach[point_id] = reach.get(point_id, 0) + count * members.get(group_id, 0)
        deliveries[point_id] = deliveries.get(point_id, 0) + count
    rows = [
        {
            "id": p.id,
            "title": p.title,
            "status": p.status,
            "deliveries": deliveries.get(p.id, 0),
            "reach": reach.get(p.id, 0),
            "views": p.view_count,
        }
        for p in points
    ]
    return _with_figures(rows, "knowledge_point"), next_cursor
