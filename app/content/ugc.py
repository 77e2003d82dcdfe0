"""Member posts (UGC): write, sanitise, check with WeChat content safety, publish, report, moderate.

States: draft → published (after the safety check, with the current shared-copyright licence accepted);
an operator may reject a post (the author can edit and publish again) or take it down (final).
Reports: each member reports a post once; when the reports not yet judged reach CONTENT_REPORTS_TO_HIDE the
post is hidden from feeds until an operator restores, rejects or takes it down.
"""

import html
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.catalog import service as catalog
from app.content import feeds, sanitize
from app.content.models import AGE_BAND_MONTHS, CopyrightAcceptance, MemberPost, MemberPostProduct, MemberPostReport
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import ApiError, Conflict, Forbidden, Invalid, NotFound, UpstreamError
from app.core.pagination import keyset_page
from app.groups import service as groups
from app.wechat import service as wechat

RISKY_CONTENT = 87014
EDITABLE = ("draft", "rejected")


@dataclass(frozen=True)
class LicenseStatus:
    version: str
    accepted_at: object | None


def current_license() -> str:
    return current_app.config["CONTENT_LICENSE_VERSION"]


def license_status(*, user_id: int) -> LicenseStatus:
    """The licence version in force and when the user accepted it (None: not yet)."""
    version = current_license()
    row = db.session.scalar(select(CopyrightAcceptance).filter_by(user_id=user_id, license_version=version))
    return LicenseStatus(version=version, accepted_at=row.accepted_at if row else None)


def _record_acceptance(user_id: int, version: str) -> None:
    if version != current_license():
        raise Invalid(
            "That is not the licence version in force.",
            code="license_version_outdated",
            errors={"accept_license_version": [f"The current version is {current_license()}."]},
        )
    if db.session.scalar(select(CopyrightAcceptance.id).filter_by(user_id=user_id, license_version=version)):
        return
    try:
        with db.session.begin_nested():
            db.session.add(CopyrightAcceptance(user_id=user_id, license_version=version, accepted_at=now_utc()))
    except IntegrityError:
        pass  # accepted concurrently: once is enough


def accept_license(*, user_id: int, version: str) -> LicenseStatus:
    """Record the user's acceptance of the shared-copyright licence (accepting twice changes nothing)."""
    _record_acceptance(user_id, version)
    return license_status(user_id=user_id)


def check_text_safety(*, text: str) -> None:
    """Ask WeChat whether the text is safe to publish; risky text is a 422 `content_risky`."""
    try:
        wechat.check_text_security(text=text)
    except UpstreamError as exc:
        if (exc.errors or {}).get("errcode") == RISKY_CONTENT:
            raise Invalid(
                "WeChat flagged this text as risky; please change it.",
                code="content_risky",
                errors={"text": ["Risky content."]},
            ) from exc
        raise


def _clean_text(text: str) -> str:
    limit = current_app.config["CONTENT_POST_MAX_CHARS"]
    if len(text) > limit:
        raise ApiError(f"The text is longer than {limit} characters.", status=413, code="body_too_large")
    cleaned = sanitize.post_text(text)
    if not sanitize.plain_text(cleaned):
        raise Invalid("The text is empty once markup is removed.", code="text_blank", errors={"text": ["Blank."]})
    return cleaned


def _check_products(product_ids: list[int]) -> list[int]:
    """The products in the author's order: each known, on sale and one that may be advertised."""
    ordered = list(dict.fromkeys(product_ids))
    catalog.require_products(product_ids=ordered)
    on_sale = catalog.product_cards(product_ids=ordered)
    inactive = [pid for pid in ordered if pid not in on_sale]
    if inactive:
        raise Invalid("Some products are not on sale.", code="product_inactive", errors={"product_ids": inactive})
    catalog.require_advertisable(product_ids=ordered)
    return ordered


def _group_age(author_id: int, group_id: int) -> tuple[int, int]:
    group = groups.member_group(group_id=group_id, user_id=author_id)
    if group is None:
        raise Forbidden("You can only post from groups you are a member of.", code="not_a_group_member")
    return AGE_BAND_MONTHS[group.age_band]


def _own_post(post_id: int, author_id: int) -> MemberPost:
    post = db.session.get(MemberPost, post_id)
    if post is None:
        raise NotFound("No such post.", code="post_not_found")
    if post.author_id != author_id:
        raise Forbidden("This post is someone else's.", code="post_not_yours")
    return post


def _set_fields(post: MemberPost, values: dict) -> None:
    if "text" in values:
        post.text = _clean_text(values["text"])
    if "image_urls" in values:
        post.image_urls = values["image_urls"]
    if "group_id" in values:
        band_age = _group_age(post.author_id, values["group_id"]) if values["group_id"] is not None else None
        post.group_id = values["group_id"]
        if band_age and "min_age_months" not in values and post.min_age_months is None:
            post.min_age_months, post.max_age_months = band_age
    if "min_age_months" in values or "max_age_months" in values:
        low = values.get("min_age_months", post.min_age_months)
        high = values.get("max_age_months", post.max_age_months)
        if (low is None) != (high is None) or (low is not None and low > high):
            raise Invalid(
                "Give both ends of the age range, lowest first.",
                code="validation_error",
                errors={"min_age_months": ["Needs max_age_months, and must not exceed it."]},
            )
        post.min_age_months, post.max_age_months = low, high
    if "product_ids" in values:
        ordered = _check_products(values["product_ids"])
        post.product_ids = ordered
        if post.id is not None:
            db.session.execute(delete(MemberPostProduct).where(MemberPostProduct.post_id == post.id))
        db.session.flush()
        db.session.add_all(
            MemberPostProduct(post_id=post.id, product_id=pid, position=i) for i, pid in enumerate(ordered)
        )


def _publish(post: MemberPost, accept_license_version: str | None) -> None:
    if accept_license_version is not None and accept_license_version != current_license():
        raise Invalid(
            "That is not the licence version in force.",
            code="license_version_outdated",
            errors={"accept_license_version": [f"The current version is {current_license()}."]},
        )
    if accept_license_version is None and license_status(user_id=post.author_id).accepted_at is None:
        raise Invalid(
            "Accept the shared-copyright licence to publish.",
            code="license_required",
            errors={"accept_license_version": [f"Send {current_license()}."]},
        )
    check_text_safety(text=html.unescape(sanitize.plain_text(post.text)))
    # Recorded last, so a refused publication leaves no acceptance behind.
    if accept_license_version is not None:
        _record_acceptance(post.author_id, accept_license_version)
    now = now_utc()
    post.status, post.reject_reason, post.license_version = "published", None, current_license()
    post.published_at, post.updated_at = now, now
    db.session.flush()
    feeds.post_changed(post=post)


def create_post(*, author_id: int, values: dict, publish: bool, accept_license_version: str | None) -> MemberPost:
    """Write a post (a draft, or published at once when `publish`: its share codes are the flow's)."""
    now = now_utc()
    post = MemberPost(
        author_id=author_id,
        text="",
        image_urls=[],
        product_ids=[],
        share_codes=[],
        status="draft",
        hidden=False,
        report_count=0,
        cleared_report_count=0,
        view_count=0,
        score=0,
        created_at=now,
        updated_at=now,
    )
    db.session.add(post)
    _set_fields(post, {"product_ids": [], **values} if "product_ids" not in values else values)
    if publish:
        _publish(post, accept_license_version)
    return post


def update_post(*, post_id: int, author_id: int, changes: dict) -> MemberPost:
    """Edit one's own draft or rejected post."""
    post = _own_post(post_id, author_id)
    if post.status not in EDITABLE:
        raise Conflict("Only drafts and rejected posts can be edited.", code="post_not_editable")
    _set_fields(post, changes)
    post.updated_at = now_utc()
    return post


def publish_post(*, post_id: int, author_id: int, accept_license_version: str | None) -> MemberPost:
    """Publish one's own draft or rejected post after the safety check (its share codes are the flow's)."""
    post = _own_post(post_id, author_id)
    if post.status not in EDITABLE:
        raise Conflict(f"A {post.status.replace('_', ' ')} post cannot be published.", code="post_not_publishable")
    _publish(post, accept_license_version)
    return post


def shareable_post(*, post_id: int) -> MemberPost:
    """A post members may share now: published and not hidden (404 otherwise)."""
    post = db.session.get(MemberPost, post_id)
    if post is None or not visible(post):
        raise NotFound("No such post.", code="post_not_found")
    return post


def visible(post: MemberPost) -> bool:
    return post.status == "published" and not post.hidden


def view_post(*, post_id: int, viewer_id: int | None) -> MemberPost:
    """A published, unhidden post (authors also see their own in any state); others' views are counted."""
    post = db.session.get(MemberPost, post_id)
    if post is None or (not visible(post) and post.author_id != viewer_id):
        raise NotFound("No such post.", code="post_not_found")
    if post.author_id != viewer_id and visible(post):
        db.session.execute(
            update(MemberPost)
            .where(MemberPost.id == post.id)
            .values(view_count=MemberPost.view_count + 1, score=MemberPost.score + 1)
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(post)
    return post


def my_posts(
    *, author_id: int, status: str | None, cursor: str | None, limit: int
) -> tuple[list[MemberPost], str | None]:
    """One's own posts in any state, newest first."""
    stmt = select(MemberPost).where(MemberPost.author_id == author_id)
    if status:
        stmt = stmt.where(MemberPost.status == status)
    return keyset_page(
        stmt,
        columns=[MemberPost.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda p: (p.id,),
        session=db.session,
    )


def report_post(*, post_id: int, reporter_id: int, reason: str) -> MemberPost:
    """Report a visible post once; enough unjudged reports hide it until an operator reviews."""
    post = db.session.get(MemberPost, post_id)
    if post is None or not visible(post):
        raise NotFound("No such post.", code="post_not_found")
    if post.author_id == reporter_id:
        raise Invalid("You cannot report your own post.", code="own_post")
    threshold = current_app.config["CONTENT_REPORTS_TO_HIDE"]
    try:
        with db.session.begin_nested():
            db.session.add(
                MemberPostReport(
                    post_id=post.id, reporter_id=reporter_id, reason=sanitize.plain_text(reason), created_at=now_utc()
                )
            )
    except IntegrityError:
        raise Conflict("You have reported this post already.", code="already_reported") from None
    # One statement counts the report and hides the post at the threshold, so concurrent reports cannot miss it.
    reaches = MemberPost.report_count + 1 - MemberPost.cleared_report_count >= threshold
    db.session.execute(
        update(MemberPost)
        .where(MemberPost.id == post.id)
        .values(report_count=MemberPost.report_count + 1, hidden=MemberPost.hidden | reaches)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(post)
    if post.hidden:
        feeds.post_changed(post=post)
    return post


def moderation_queue(*, cursor: str | None, limit: int) -> tuple[list[MemberPost], str | None]:
    """Published posts with reports not yet judged (hidden ones among them), oldest first."""
    stmt = select(MemberPost).where(
        MemberPost.status == "published", MemberPost.report_count > MemberPost.cleared_report_count
    )
    return keyset_page(
        stmt,
        columns=[MemberPost.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda p: (p.id,),
        descending=False,
        session=db.session,
    )


def moderate(*, post_id: int, decision: str, reason: str | None) -> MemberPost:
    """An operator restores a reported post, rejects it (the author may fix it) or takes it down for good."""
    post = db.session.get(MemberPost, post_id)
    if post is None:
        raise NotFound("No such post.", code="post_not_found")
    if post.status == "taken_down":
        raise Conflict("This post was taken down.", code="post_taken_down")
    if decision == "restore" and post.status != "published":
        raise Conflict("Only published posts can be restored.", code="post_not_published")
    post.cleared_report_count = post.report_count
    post.hidden = False
    if decision == "reject":
        post.status, post.reject_reason = "rejected", reason
    elif decision == "take_down":
        post.status, post.reject_reason = "taken_down", reason
    post.updated_at = now_utc()
    db.session.flush()
    feeds.post_changed(post=post)
    return post
