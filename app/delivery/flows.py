"""Delivery use cases that cross domains: cards and share links for posts into groups, previews, drips, and a
mom's own share links. Each runs in its edge's one transaction (a view's, or the dispatch job's step).

Card making writes in the domains that own the codes (affiliate share links, coupon share codes, content ids
and drip records); it happens when an occurrence's deliveries are written, so that sending only renders.
"""

from app.affiliate import service as affiliate
from app.content import service as content
from app.core.access import Actor
from app.core.errors import ApiError, Invalid
from app.delivery import kinds, planning, service
from app.groups import service as groups
from app.groups.service import GroupBrief

# What a preview shows instead of a customer group's credentials.
PLACEHOLDERS = {"sender": "<sender>", "chat_id": "<chat_id>"}


def make_messages(
    frozen: dict, *, targets: list[GroupBrief], occurrence_id: int | None
) -> dict[int, kinds.Skip | ApiError]:
    """Make what each group's message needs into the snapshot `frozen` (under "groups", by group id).

    Returns the groups that get nothing this time (Skip) and those whose making was refused (ApiError), which
    get no message. What a refused making recorded first stays: a drip's point the group could not be sent is
    passed, so the drip moves on next time rather than failing on it again. `occurrence_id` None is a preview:
    nothing is recorded as sent, though codes are made (the same ones the occurrence then reuses).
    """
    kind = kinds.of(frozen["kind"])
    made = frozen.setdefault("groups", {})
    refused: dict[int, kinds.Skip | ApiError] = {}
    for group in targets:
        try:
            made[str(group.id)] = kind.make(frozen, group=group, post_id=frozen["post_id"], occurrence_id=occurrence_id)
        except (kinds.Skip, ApiError) as refusal:
            refused[group.id] = refusal
    return refused


def preview(*, post_id: int, group_id: int, actor: Actor) -> dict:
    """The exact payload the group's channel would receive now (credential fields shown as placeholders).

    The group's codes are made as they would be when the post goes out, so the preview shows the code sent.
    """
    post = service.get_post(post_id=post_id, actor=actor)
    group = groups.assert_groups_postable(group_ids=[group_id], actor=actor)[0]
    kind = kinds.of(post.kind)
    frozen = {
        "post_id": post.id,
        "kind": post.kind,
        "content": post.content,
        **kind.snapshot(post.content, author=planning.post_author(post)),
    }
    shown = {"post_id": post.id, "group_id": group.id, "channel": group.channel, "payload": None, "skip": None}
    if kind.per_group:
        refusal = make_messages(frozen, targets=[group], occurrence_id=None).get(group.id)
        if isinstance(refusal, kinds.Skip):
            shown["skip"] = {"code": refusal.code, "reason": refusal.reason}
            return shown
        if refusal is not None:
            raise refusal
    shown["payload"] = kinds.render(frozen, channel=group.channel, group_id=group.id, credentials=PLACEHOLDERS)
    return shown


def drip_upcoming(*, post_id: int, group_id: int, actor: Actor, limit: int) -> dict:
    """What a drip post will send a group next, in order, and when it next fires (hosts: own posts and groups)."""
    post = service.get_post(post_id=post_id, actor=actor)
    if post.kind != "knowledge_point" or post.content.get("knowledge_point_id") is not None:
        raise Invalid("This post is not a drip.", code="not_a_drip")
    group = groups.assert_groups_postable(group_ids=[group_id], actor=actor)[0]
    if group.id not in {row.id for row in groups.target_groups(**planning.post_targets(post))}:
        raise Invalid("The drip does not reach this group.", code="group_not_targeted")
    next_at = service.next_occurrence_at(post_id=post.id, timezone=group.timezone)
    items = content.upcoming_drip_points(content=post.content, group_id=group.id, age_band=group.age_band, limit=limit)
    next_outcome = None if next_at is None else "send" if items else "skip"
    return {"post_id": post.id, "group_id": group.id, "next_at": next_at, "next_outcome": next_outcome, "items": items}


def share_link_for_sharer(
    *,
    sharer_id: int,
    product_id: int,
    group_id: int | None = None,
    post_id: int | None = None,
    content_id: int | None = None,
) -> dict:
    """A mom's own share link, with its card and code image: her group's host and the content's author earn,
    nobody the client names (the group must be hers, the post must have reached it, the content must carry
    the product)."""
    host_id = groups.sharing_host_id(group_id=group_id, user_id=sharer_id) if group_id is not None else None
    if post_id is not None and group_id is None:
        raise Invalid(
            "A post is shared from the group it went into; name the group.",
            code="post_requires_group",
            errors={"group_id": ["Required with post_id."]},
        )
    if post_id is not None and not service.post_reached_group(post_id=post_id, group_id=group_id):
        raise Invalid(
            "The group did not get this post.",
            code="post_not_in_group",
            errors={"post_id": ["Not a post of the group."]},
        )
    author_id = (
        None
        if content_id is None
        else content.content_author_for_link(
            content_id=content_id, product_id=product_id, post_id=post_id, group_id=group_id
        )
    )
    shared = affiliate.create_share_link(
        sharer_id=sharer_id,
        product_id=product_id,
        group_id=group_id,
        post_id=post_id,
        content_id=content_id,
        host_id=host_id,
        content_author_id=author_id,
    )
    link = shared.link
    return {
        "id": link.id,
        "code": shared.code,
        "path": shared.path,
        "url": shared.url,
        "product_id": link.product_id,
        "group_id": link.group_id,
        "post_id": link.post_id,
        "content_id": link.content_id,
        "card": shared.card,
        "code_image": affiliate.share_code_image(code=shared.code, product_id=link.product_id),
    }
