"""Member posts: write, publish, read, report; feeds; the shared-copyright licence; operators' moderation."""

from flask import current_app, g
from flask_smorest import Blueprint

from app.content import feeds, flows, revenue, ugc
from app.content.schemas import (
    DashboardSchema,
    FeedArgsSchema,
    LicenseAcceptSchema,
    LicenseSchema,
    ModerateSchema,
    MyPostsArgsSchema,
    PostInSchema,
    PostPageSchema,
    PostPatchSchema,
    PostSchema,
    PublishSchema,
    ReportInSchema,
    ShareCodeListSchema,
)
from app.core import access, pagecache
from app.core.pagination import PageArgsSchema

blp = Blueprint("posts", __name__, url_prefix="/api/v1", description="Member posts (UGC), feeds and moderation.")
FEED_PAGES = "content-feed"


def _one(post) -> dict:
    return feeds.shape_posts([post], feeds.product_cards(posts=[post]))[0]


@blp.route("/member-posts", methods=["POST"])
@access.authenticated
@blp.arguments(PostInSchema)
@blp.response(201, PostSchema)
def create_post(args):
    """Write a post; with publish=true it is checked by WeChat content safety and published at once."""
    publish, version = args.pop("publish"), args.pop("accept_license_version")
    return _one(
        flows.create_member_post(author_id=g.user.id, values=args, publish=publish, accept_license_version=version)
    )


@blp.route("/member-posts", methods=["GET"])
@access.public
# Feed pages are the same for everyone: a query string served before is answered before parsing it.
@pagecache.served_from_cache(namespace=FEED_PAGES, ttl_setting="CONTENT_FEED_CACHE_SECONDS")
# An instance, not the class: webargs would build a schema per request on this hot path.
@blp.arguments(FeedArgsSchema(), location="query")
@blp.response(200, PostPageSchema)
def feed(args):
    """The feed: published posts, by group, product or child age band; newest or popular first."""
    body = feeds.feed_json(
        group_id=args["group_id"],
        product_id=args["product_id"],
        age_band=args["age_band"],
        sort=args["sort"],
        cursor=args["cursor"],
        limit=args["limit"],
        page_key=pagecache.page_key(FEED_PAGES),
    )
    return current_app.response_class(body, mimetype="application/json")


@blp.route("/member-posts/<int(max=9007199254740992):post_id>", methods=["GET"])
@access.public
@blp.response(200, PostSchema)
def view_post(post_id: int):
    """One published post (your own in any state); a view by someone else is counted."""
    user = access.current_user()
    return _one(ugc.view_post(post_id=post_id, viewer_id=user.id if user else None))


@blp.route("/member-posts/<int(max=9007199254740992):post_id>", methods=["PATCH"])
@access.authenticated
@blp.arguments(PostPatchSchema)
@blp.response(200, PostSchema)
def update_post(args, post_id: int):
    """Edit your draft or rejected post."""
    return _one(ugc.update_post(post_id=post_id, author_id=g.user.id, changes=args))


@blp.route("/member-posts/<int(max=9007199254740992):post_id>/publish", methods=["POST"])
@access.authenticated
@blp.arguments(PublishSchema)
@blp.response(200, PostSchema)
def publish_post(args, post_id: int):
    """Publish your draft or rejected post (content safety check; the licence must be accepted)."""
    return _one(
        flows.publish_member_post(
            post_id=post_id, author_id=g.user.id, accept_license_version=args["accept_license_version"]
        )
    )


@blp.route("/member-posts/<int(max=9007199254740992):post_id>/reports", methods=["POST"])
@access.authenticated
@blp.arguments(ReportInSchema)
@blp.response(201, PostSchema)
def report_post(args, post_id: int):
    """Report a post (once); enough reports hide it until an operator reviews."""
    return _one(ugc.report_post(post_id=post_id, reporter_id=g.user.id, reason=args["reason"]))


@blp.route("/member-posts/<int(max=9007199254740992):post_id>/share", methods=["POST"])
@access.authenticated
@blp.response(200, ShareCodeListSchema)
def share_post(post_id: int):
    """Your own share codes for a post's products: your commission, and the author keeps her content share."""
    return {"items": flows.share_member_post(post_id=post_id, sharer_id=g.user.id)}


@blp.route("/me/content/dashboard", methods=["GET"])
@access.authenticated
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, DashboardSchema)
def author_dashboard(args):
    """Your published posts: views, clicks, orders, GMV and content-share earnings each."""
    items, cursor = revenue.author_dashboard(author_id=g.user.id, cursor=args["cursor"], limit=args["limit"])
    return {"items": items, "next_cursor": cursor}


@blp.route("/me/member-posts", methods=["GET"])
@access.authenticated
@blp.arguments(MyPostsArgsSchema, location="query")
@blp.response(200, PostPageSchema)
def my_posts(args):
    """Your posts in any state, newest first."""
    items, cursor = ugc.my_posts(author_id=g.user.id, status=args["status"], cursor=args["cursor"], limit=args["limit"])
    return {"items": feeds.shape_posts(items, feeds.product_cards(posts=items)), "next_cursor": cursor}


@blp.route("/me/content-license", methods=["GET"])
@access.authenticated
@blp.response(200, LicenseSchema)
def license_status():
    """The shared-copyright licence version in force and when you accepted it."""
    return ugc.license_status(user_id=g.user.id)


@blp.route("/me/content-license", methods=["POST"])
@access.authenticated
@blp.arguments(LicenseAcceptSchema)
@blp.response(200, LicenseSchema)
def accept_license(args):
    """Accept the shared-copyright licence for your posts (the version in force)."""
    return ugc.accept_license(user_id=g.user.id, version=args["version"])


@blp.route("/admin/member-posts/reported", methods=["GET"])
@access.roles("operator")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, PostPageSchema)
def moderation_queue(args):
    """Published posts with reports not yet judged, oldest first."""
    items, cursor = ugc.moderation_queue(cursor=args["cursor"], limit=args["limit"])
    return {"items": feeds.shape_posts(items, feeds.product_cards(posts=items)), "next_cursor": cursor}


@blp.route("/admin/member-posts/<int(max=9007199254740992):post_id>/moderate", methods=["POST"])
@access.roles("operator")
@blp.arguments(ModerateSchema)
@blp.response(200, PostSchema)
def moderate(args, post_id: int):
    """Restore a reported post, reject it (the author may fix it) or take it down."""
    return _one(ugc.moderate(post_id=post_id, decision=args["decision"], reason=args["reason"]))
