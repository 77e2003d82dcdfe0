"""Posts and schedules, previews, drips, delivery logs, sandbox-channel messages, figures and operator retries;
moms' own share links (crediting their group's host and the content's author)."""

from flask import g
from flask_smorest import Blueprint

from app.core import access
from app.core.pagination import PageArgsSchema
from app.delivery import flows, service
from app.delivery.schemas import (
    DeliveryPageSchema,
    FiguresWindowArgsSchema,
    GroupDeliveryArgsSchema,
    GroupFiguresSchema,
    OccurrenceListSchema,
    PostDeliveryArgsSchema,
    PostInSchema,
    PostListArgsSchema,
    PostPageSchema,
    PostPatchSchema,
    PostSchema,
    PreviewArgsSchema,
    PreviewSchema,
    RetryInSchema,
    RetryResultSchema,
    SandboxMessagePageSchema,
    ShareLinkCreateSchema,
    ShareLinkSchema,
    UpcomingArgsSchema,
    UpcomingSchema,
)

blp = Blueprint(
    "delivery", __name__, url_prefix="/api/v1", description="Scheduled posts and their deliveries into groups."
)
share_links = Blueprint(
    "share_links",
    __name__,
    url_prefix="/api/v1",
    description="Moms' share links: the group's host and the content's author earn their shares.",
)


def _shaped(post) -> dict:
    fields = (
        "id",
        "author_id",
        "kind",
        "content",
        "product_id",
        "target_mode",
        "target_filter",
        "schedule",
        "status",
        "version",
        "created_at",
        "updated_at",
    )
    return {f: getattr(post, f) for f in fields} | {"group_ids": service.post_group_ids(post_id=post.id)}


@blp.route("/posts", methods=["POST"])
@access.roles("host")
@blp.arguments(PostInSchema)
@blp.response(201, PostSchema)
def create_post(args):
    """Schedule a post into groups you host (operators: any), by group ids or a filter resolved at send time."""
    return _shaped(
        service.create_post(
            actor=access.current_actor(),
            kind=args["kind"],
            content=args["content"],
            targets=args["targets"],
            schedule_spec=args["schedule"],
        )
    )


@blp.route("/posts", methods=["GET"])
@access.roles("host")
@blp.arguments(PostListArgsSchema, location="query")
@blp.response(200, PostPageSchema)
def list_posts(args):
    """Your posts (operators: all), newest first."""
    items, cursor = service.list_posts(
        actor=access.current_actor(), status=args["status"], cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": [_shaped(p) for p in items], "next_cursor": cursor}


@blp.route("/posts/<int:post_id>", methods=["GET"])
@access.roles("host")
@blp.response(200, PostSchema)
def get_post(post_id: int):
    """One post."""
    return _shaped(service.get_post(post_id=post_id, actor=access.current_actor()))


@blp.route("/posts/<int:post_id>", methods=["PATCH"])
@access.roles("host")
@blp.arguments(PostPatchSchema)
@blp.response(200, PostSchema)
def update_post(args, post_id: int):
    """Edit content, targets or schedule; only occurrences still to come change."""
    return _shaped(service.update_post(post_id=post_id, actor=access.current_actor(), changes=args))


@blp.route("/posts/<int:post_id>/pause", methods=["POST"])
@access.roles("host")
@blp.response(200, PostSchema)
def pause_post(post_id: int):
    """Pause: no further occurrences until resumed."""
    return _shaped(service.pause_post(post_id=post_id, actor=access.current_actor()))


@blp.route("/posts/<int:post_id>/resume", methods=["POST"])
@access.roles("host")
@blp.response(200, PostSchema)
def resume_post(post_id: int):
    """Resume a paused post from now on."""
    return _shaped(service.resume_post(post_id=post_id, actor=access.current_actor()))


@blp.route("/posts/<int:post_id>/cancel", methods=["POST"])
@access.roles("host")
@blp.response(200, PostSchema)
def cancel_post(post_id: int):
    """Cancel all future occurrences."""
    return _shaped(service.cancel_post(post_id=post_id, actor=access.current_actor()))


@blp.route("/posts/<int:post_id>/preview", methods=["GET"])
@access.roles("host")
@blp.arguments(PreviewArgsSchema, location="query")
@blp.response(200, PreviewSchema)
def preview_post(args, post_id: int):
    """The exact payload a group's channel would receive, rendered by the code the workers send with."""
    return flows.preview(post_id=post_id, group_id=args["group_id"], actor=access.current_actor())


@blp.route("/posts/<int:post_id>/occurrences", methods=["GET"])
@access.roles("host")
@blp.response(200, OccurrenceListSchema)
def list_occurrences(post_id: int):
    """When the post went out or will go out, per time zone."""
    return {"items": service.list_occurrences(post_id=post_id, actor=access.current_actor())}


@blp.route("/posts/<int:post_id>/deliveries", methods=["GET"])
@access.roles("host")
@blp.arguments(PostDeliveryArgsSchema, location="query")
@blp.response(200, DeliveryPageSchema)
def post_deliveries(args, post_id: int):
    """The delivery log of a post with failure reasons."""
    items, cursor = service.post_deliveries(
        post_id=post_id,
        actor=access.current_actor(),
        group_id=args["group_id"],
        state=args["state"],
        cursor=args["cursor"],
        limit=args["limit"],
    )
    return {"items": items, "next_cursor": cursor}


@blp.route("/groups/<int:group_id>/deliveries", methods=["GET"])
@access.roles("host")
@blp.arguments(GroupDeliveryArgsSchema, location="query")
@blp.response(200, DeliveryPageSchema)
def group_deliveries(args, group_id: int):
    """The delivery log of a group with failure reasons."""
    items, cursor = service.group_deliveries(
        group_id=group_id,
        actor=access.current_actor(),
        post_id=args["post_id"],
        state=args["state"],
        cursor=args["cursor"],
        limit=args["limit"],
    )
    return {"items": items, "next_cursor": cursor}


@blp.route("/groups/<int:group_id>/sandbox-messages", methods=["GET"])
@access.roles("host")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, SandboxMessagePageSchema)
def sandbox_messages(args, group_id: int):
    """What a sandbox-channel group would have seen."""
    items, cursor = service.sandbox_messages(
        group_id=group_id, actor=access.current_actor(), cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": items, "next_cursor": cursor}


@blp.route("/groups/<int:group_id>/figures", methods=["GET"])
@access.roles("host")
@blp.arguments(FiguresWindowArgsSchema, location="query")
@blp.response(200, GroupFiguresSchema)
def group_figures(args, group_id: int):
    """Per-group figures: deliveries, posts, fans; clicks, claims, orders and GMV in an optional [since, until)."""
    return service.group_figures(
        group_id=group_id, actor=access.current_actor(), since=args["since"], until=args["until"]
    )


@blp.route("/admin/deliveries/retry", methods=["POST"])
@access.roles("operator")
@blp.arguments(RetryInSchema)
@blp.response(200, RetryResultSchema)
def retry_deliveries(args):
    """Send failed, dead (or, knowingly, unknown) deliveries again, in bulk."""
    return {
        "retried": service.retry_deliveries(
            delivery_ids=args.get("delivery_ids"),
            post_id=args.get("post_id"),
            group_id=args.get("group_id"),
            states=args["states"],
        )
    }


@blp.route("/drips/<int(max=9007199254740992):post_id>/upcoming", methods=["GET"])
@access.roles("host")
@blp.arguments(UpcomingArgsSchema, location="query")
@blp.response(200, UpcomingSchema)
def drip_upcoming(args, post_id: int):
    """What your drip (a knowledge_point post naming a course or topic) sends one of your groups next."""
    return flows.drip_upcoming(
        post_id=post_id, group_id=args["group_id"], limit=args["limit"], actor=access.current_actor()
    )


@share_links.route("/share-links", methods=["POST"])
@access.authenticated
@share_links.arguments(ShareLinkCreateSchema)
@share_links.response(201, ShareLinkSchema)
def create_share_link(args):
    """Make a tracked share link for a product: short code, mini-program path, card and code image."""
    return flows.share_link_for_sharer(sharer_id=g.user.id, **args)


blueprints = [blp, share_links]
