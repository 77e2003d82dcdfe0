"""What other domains call: knowledge points for the delivery engine (fixed points and drips), content ids."""

from app.content import drip, revenue
from app.content.models import ContentItem
from app.core.db import db
from app.core.errors import Invalid


def check_drip_source(*, content: dict) -> None:
    """A drip names an approved course, or a topic with an approved course (else 422)."""
    drip.check_source(content=content)


def knowledge_point_snapshot(*, content: dict) -> dict | None:
    """Freeze a fixed knowledge point for an occurrence (None for a drip, chosen per group when sent)."""
    if content.get("knowledge_point_id") is None:
        return None
    return drip.fixed_point(knowledge_point_id=content["knowledge_point_id"])


def knowledge_point_for_group(
    *, post_id: int, occurrence_id: int | None, content: dict, frozen_point: dict | None, group_id: int
) -> dict | None:
    """The knowledge point a group gets: the fixed one, or the drip's next fit (None: nothing fits, skip the group)."""
    if frozen_point is not None:
        if occurrence_id is not None:
            drip.record_fixed(
                post_id=post_id, occurrence_id=occurrence_id, group_id=group_id, point_id=frozen_point["id"]
            )
        return frozen_point
    return drip.pick(post_id=post_id, occurrence_id=occurrence_id, content=content, group_id=group_id)


def knowledge_point_share_path(*, point: dict, host_id: int, group_id: int, post_id: int) -> str:
    """The mini-program path of the host's share link for the point's product, crediting the partner's content share."""
    return revenue.knowledge_point_link(point=point, host_id=host_id, group_id=group_id, post_id=post_id).path


def content_author_for_link(
    *, content_id: int, product_id: int, post_id: int | None = None, group_id: int | None = None
) -> int:
    """Who earns the content share on a member's link of `product_id` for this content (404, or 422 on a mismatch)."""
    return revenue.link_author(content_id=content_id, product_id=product_id, post_id=post_id, group_id=group_id)


def content_of(*, content_id: int) -> tuple[str, int] | None:
    """What a share link's content_id names: ("member_post" | "knowledge_point", its id), or None."""
    item = db.session.get(ContentItem, content_id)
    return (item.kind, item.ref_id) if item else None


def drip_upcoming(*, post_id: int, group_id: int, actor, limit: int) -> dict:
    """What a drip post will send a group next, in order, and when it next fires (hosts: own posts and groups)."""
    from app.delivery import engine
    from app.delivery import service as delivery
    from app.groups import service as groups

    post = delivery.get_post(post_id=post_id, actor=actor)
    if post.kind != "knowledge_point" or post.content.get("knowledge_point_id") is not None:
        raise Invalid("This post is not a drip.", code="not_a_drip")
    group = groups.assert_groups_postable(group_ids=[group_id], actor=actor)[0]
    if group.id not in {row.id for row in groups.target_groups(**engine.post_targets(post))}:
        raise Invalid("The drip does not reach this group.", code="group_not_targeted")
    next_at = next(
        (
            o.due_at
            for o in reversed(delivery.list_occurrences(post_id=post.id, actor=actor))
            if o.state == "scheduled" and o.timezone == group.timezone
        ),
        None,
    )
    items = drip.upcoming(content=post.content, group_id=group.id, limit=limit)
    next_outcome = None if next_at is None else "send" if items else "skip"
    return {"post_id": post.id, "group_id": group.id, "next_at": next_at, "next_outcome": next_outcome, "items": items}
