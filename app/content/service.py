"""What other domains call: knowledge points for posts into groups (fixed points and drips), content ids."""

from app.content import drip, pgc, revenue
from app.content.models import ContentItem
from app.core.db import db


def check_drip_source(*, content: dict) -> None:
    """A drip names an approved course, or a topic with an approved course (else 422)."""
    drip.check_source(content=content)


def is_drip_source(*, content: dict) -> bool:
    """Whether a drip's content names an approved course, or a topic with one."""
    return drip.is_source(content=content)


def check_postable_point(*, knowledge_point_id: int) -> None:
    """The knowledge point may be posted: it, its lesson and its course are approved (404/409 otherwise)."""
    pgc.postable_knowledge_point(knowledge_point_id=knowledge_point_id)


def postable_point(*, knowledge_point_id: int) -> dict:
    """A knowledge point as a message shows it (id, title, text, partner_id, product_id); 404/409 unless postable."""
    return drip.fixed_point(knowledge_point_id=knowledge_point_id)


def record_point_sent(*, post_id: int, occurrence_id: int, group_id: int, point_id: int) -> None:
    """Note that a post's occurrence carries a knowledge point into a group (drips skip it; partners' reach counts it)."""
    drip.record_fixed(post_id=post_id, occurrence_id=occurrence_id, group_id=group_id, point_id=point_id)


def next_drip_point(
    *, post_id: int, occurrence_id: int | None, content: dict, group_id: int, age_band: str
) -> dict | None:
    """The point a drip carries into a group at an occurrence, recorded there (with no occurrence, a preview:
    nothing is recorded); None when nothing left fits the group's age band."""
    return drip.pick(
        post_id=post_id, occurrence_id=occurrence_id, content=content, group_id=group_id, age_band=age_band
    )


def upcoming_drip_points(*, content: dict, group_id: int, age_band: str, limit: int) -> list[dict]:
    """The next points a drip would carry into a group, in order (nothing is recorded)."""
    return drip.upcoming(content=content, group_id=group_id, age_band=age_band, limit=limit)


def knowledge_point_content_id(*, point: dict) -> int:
    """The content id a share link for a knowledge point's product carries (made on first use)."""
    return revenue.content_item_id(kind="knowledge_point", ref_id=point["id"], author_id=point["partner_id"])


def content_author_for_link(
    *, content_id: int, product_id: int, post_id: int | None = None, group_id: int | None = None
) -> int:
    """Who earns the content share on a member's link of `product_id` for this content (404, or 422 on a mismatch)."""
    return revenue.link_author(content_id=content_id, product_id=product_id, post_id=post_id, group_id=group_id)


def content_of(*, content_id: int) -> tuple[str, int] | None:
    """What a share link's content_id names: ("member_post" | "knowledge_point", its id), or None."""
    item = db.session.get(ContentItem, content_id)
    return (item.kind, item.ref_id) if item else None
