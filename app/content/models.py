"""Partner content (courses → lessons → knowledge points), its review trail, and member posts (UGC).

Child ages are months relative to birth: negative months are pregnancy (down to -10), so one integer range
describes both "second trimester" and "2–3 years". Review states are the same for the three PGC levels.
"""

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import BigId, IdPk, db, one_of

REVIEW_STATES = ("draft", "pending_review", "approved", "rejected")
ITEM_KINDS = ("course", "lesson", "knowledge_point")
POST_STATES = ("draft", "published", "rejected", "taken_down")
CONTENT_KINDS = ("knowledge_point", "member_post")
AGE_MIN_MONTHS, AGE_MAX_MONTHS = -10, 216
# Child age in months of each group age band (the groups domain's bands, inclusive ends).
AGE_BAND_MONTHS = {
    "pregnancy": (-10, -1),
    "0-6m": (0, 5),
    "6-12m": (6, 11),
    "1-3y": (12, 35),
    "3-6y": (36, 71),
    "6y+": (72, 216),
}


def _age_checks() -> tuple[CheckConstraint, ...]:
    return (
        CheckConstraint(
            f"min_age_months BETWEEN {AGE_MIN_MONTHS} AND {AGE_MAX_MONTHS} AND "
            f"max_age_months BETWEEN {AGE_MIN_MONTHS} AND {AGE_MAX_MONTHS}",
            name="age_in_range",
        ),
        CheckConstraint("min_age_months <= max_age_months", name="age_ordered"),
    )


class Course(db.Model):
    __tablename__ = "courses"
    __table_args__ = (CheckConstraint(one_of("status", REVIEW_STATES), name="known_status"),)

    id: Mapped[IdPk]
    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    # A topic lets groups subscribe to every course on it ("刷牙", "辅食"), not to one course.
    topic: Mapped[str] = mapped_column(String(32), default="", index=True)
    cover_url: Mapped[str | None] = mapped_column(String(1024))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Lesson(db.Model):
    __tablename__ = "lessons"
    __table_args__ = (
        CheckConstraint(one_of("status", REVIEW_STATES), name="known_status"),
        Index("ix_lessons_course_position", "course_id", "position"),
    )

    id: Mapped[IdPk]
    course_id: Mapped[int] = mapped_column(BigId, ForeignKey("courses.id", ondelete="CASCADE"))
    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(128))
    summary: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class KnowledgePoint(db.Model):
    """One postable tip; `body` is sanitised HTML."""

    __tablename__ = "knowledge_points"
    __table_args__ = (
        CheckConstraint(one_of("status", REVIEW_STATES), name="known_status"),
        *_age_checks(),
        Index("ix_knowledge_points_lesson_position", "lesson_id", "position"),
        Index("ix_knowledge_points_course_status", "course_id", "status"),
    )

    id: Mapped[IdPk]
    lesson_id: Mapped[int] = mapped_column(BigId, ForeignKey("lessons.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(BigId, ForeignKey("courses.id", ondelete="CASCADE"))
    partner_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(128))
    body: Mapped[str] = mapped_column(Text, default="")
    image_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    video_url: Mapped[str | None] = mapped_column(String(1024))
    min_age_months: Mapped[int] = mapped_column(Integer)
    max_age_months: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    product_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    # Opens of the point's page in the mini-program (partners' reach figures).
    view_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ContentReview(db.Model):
    """The review trail: every submission, decision and edit-triggered resubmission, append-only."""

    __tablename__ = "content_reviews"
    __table_args__ = (
        CheckConstraint(one_of("item_kind", ITEM_KINDS), name="known_item_kind"),
        CheckConstraint(
            one_of("action", ("submitted", "approved", "rejected", "resubmitted_by_edit")), name="known_action"
        ),
        Index("ix_content_reviews_item", "item_kind", "item_id", "id"),
    )

    id: Mapped[IdPk]
    item_kind: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[int] = mapped_column(BigId)
    action: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(String(500))
    actor_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    created_at: Mapped[datetime]


class CopyrightAcceptance(db.Model):
    """An author's acceptance of the shared-copyright licence, once per licence version."""

    __tablename__ = "copyright_acceptances"
    __table_args__ = (UniqueConstraint("user_id", "license_version"),)

    id: Mapped[IdPk]
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    license_version: Mapped[str] = mapped_column(String(16))
    accepted_at: Mapped[datetime]


class MemberPost(db.Model):
    __tablename__ = "member_posts"
    __table_args__ = (
        CheckConstraint(one_of("status", POST_STATES), name="known_status"),
        CheckConstraint("report_count >= 0", name="report_count_not_negative"),
        CheckConstraint(
            "min_age_months IS NULL OR max_age_months IS NULL OR min_age_months <= max_age_months", name="age_ordered"
        ),
        Index("ix_member_posts_feed_newest", "status", "hidden", "published_at", "id"),
        Index("ix_member_posts_feed_popular", "status", "hidden", "score", "id"),
        Index("ix_member_posts_author", "author_id", "id"),
        Index("ix_member_posts_group", "group_id", "status", "published_at"),
    )

    id: Mapped[IdPk]
    author_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    # The group the author wrote from (optional): feeds by group and the host share use it.
    group_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("chat_groups.id"))
    text: Mapped[str] = mapped_column(Text)
    image_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The linked products in the author's order; member_post_products holds the same links for product feeds.
    product_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    # The author's share code for each linked product (same order), made at publication.
    share_codes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    min_age_months: Mapped[int | None] = mapped_column(Integer)
    max_age_months: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    # Hidden by reports until an operator reviews; independent of status so a review can restore it.
    hidden: Mapped[bool] = mapped_column(default=False)
    report_count: Mapped[int] = mapped_column(Integer, default=0)
    # Reports an operator has already judged; only reports beyond these count towards hiding again.
    cleared_report_count: Mapped[int] = mapped_column(Integer, default=0)
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    # Popularity, kept by in-place increments (each view by someone else adds 1); the "popular" feed sorts by it.
    score: Mapped[int] = mapped_column(Integer, default=0)
    license_version: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    published_at: Mapped[datetime | None]


class MemberPostProduct(db.Model):
    __tablename__ = "member_post_products"
    __table_args__ = (Index("ix_member_post_products_product", "product_id", "post_id"),)

    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("member_posts.id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[int] = mapped_column(BigId, ForeignKey("products.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class MemberPostReport(db.Model):
    """One member's report of a post; a member reports a post once."""

    __tablename__ = "member_post_reports"
    __table_args__ = (UniqueConstraint("post_id", "reporter_id"),)

    id: Mapped[IdPk]
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("member_posts.id", ondelete="CASCADE"))
    reporter_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]


class DripSent(db.Model):
    """A knowledge point a group has received by drip: never the same one twice, one per occurrence."""

    __tablename__ = "drip_sent"
    __table_args__ = (
        UniqueConstraint("group_id", "knowledge_point_id"),
        UniqueConstraint("post_id", "group_id", "occurrence_id"),
    )

    id: Mapped[IdPk]
    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("chat_groups.id", ondelete="CASCADE"))
    knowledge_point_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("knowledge_points.id", ondelete="CASCADE"), index=True
    )
    # The delivery post (the drip schedule) and the occurrence that sent it.
    post_id: Mapped[int] = mapped_column(BigId, ForeignKey("posts.id", ondelete="CASCADE"))
    occurrence_id: Mapped[int] = mapped_column(BigId)
    sent_at: Mapped[datetime]


class ContentItem(db.Model):
    """One id space for everything that earns a content share: share links carry this id as content_id."""

    __tablename__ = "content_items"
    __table_args__ = (
        UniqueConstraint("kind", "ref_id"),
        CheckConstraint(one_of("kind", CONTENT_KINDS), name="known_kind"),
    )

    id: Mapped[IdPk]
    kind: Mapped[str] = mapped_column(String(16))
    ref_id: Mapped[int] = mapped_column(BigId)
    author_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
