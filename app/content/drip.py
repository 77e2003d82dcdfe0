"""Knowledge points posted by the delivery engine: one fixed point, or a drip through a course or a topic.

A drip is a delivery post of kind `knowledge_point` whose content names a course or a topic; its targets
(groups or a filter) and schedule (a local time on chosen days) are the delivery engine's. At each occurrence
every target group gets the next knowledge point that is approved (with its lesson and course), fits the
group's child age band, and that the group has not received before (from any drip): courses in id order,
then lessons and points by position. A group with nothing left that fits is skipped: nothing is sent and
its delivery ends `skipped` (code `drip_nothing_fits`), which is no failure; the next occurrence looks again,
so points approved meanwhile go out then. Each group's point is chosen and recorded in drip_sent when the
occurrence goes out (its deliveries are written), keyed by the occurrence: the sender only renders what was
chosen, so a retried send repeats the same point and never moves on.
"""

import html

import nh3
from sqlalchemy import and_, exists, select
from sqlalchemy.exc import IntegrityError

from app.content import pgc
from app.content.models import AGE_BAND_MONTHS, Course, DripSent, KnowledgePoint, Lesson
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Conflict, Invalid

PICK_ATTEMPTS = 3


def _approved_points():
    return (
        select(KnowledgePoint)
        .join(Lesson, Lesson.id == KnowledgePoint.lesson_id)
        .join(Course, Course.id == KnowledgePoint.course_id)
        .where(KnowledgePoint.status == "approved", Lesson.status == "approved", Course.status == "approved")
    )


def _approved_course_filter(content: dict):
    if content.get("course_id") is not None:
        return Course.id == content["course_id"]
    return Course.topic == content.get("topic")


def is_source(*, content: dict) -> bool:
    """Whether a drip's course, or a course on its topic, is approved."""
    found = db.session.scalar(
        select(Course.id).where(_approved_course_filter(content), Course.status == "approved").limit(1)
    )
    return found is not None


def check_source(*, content: dict) -> None:
    """A drip names an approved course, or a topic with an approved course (else 422)."""
    if not is_source(content=content):
        raise Invalid(
            "The drip names no approved course.",
            code="drip_source_not_approved",
            errors={"content": ["No approved course for this course id or topic."]},
        )


def frozen_point(point: KnowledgePoint) -> dict:
    """What a message shows of a knowledge point: its title, its body as plain text, its first product."""
    text = html.unescape(nh3.clean(point.body.replace("</p>", "</p>\n").replace("<br>", "\n"), tags=set())).strip()
    return {
        "id": point.id,
        "title": point.title,
        "text": text,
        "partner_id": point.partner_id,
        "product_id": (point.product_ids or [None])[0],
    }


def fixed_point(*, knowledge_point_id: int) -> dict:
    """Freeze one knowledge point for an occurrence; refused (409) when it is no longer approved."""
    return frozen_point(pgc.postable_knowledge_point(knowledge_point_id=knowledge_point_id))


def _candidates(*, content: dict, group_id: int, age_band: str):
    low, high = AGE_BAND_MONTHS[age_band]
    received = exists().where(DripSent.group_id == group_id, DripSent.knowledge_point_id == KnowledgePoint.id)
    stmt = _approved_points().where(
        KnowledgePoint.min_age_months <= high, KnowledgePoint.max_age_months >= low, ~received
    )
    if content.get("course_id") is not None:
        stmt = stmt.where(Course.id == content["course_id"])
    else:
        stmt = stmt.where(Course.topic == content["topic"])
    return stmt.order_by(Course.id, Lesson.position, Lesson.id, KnowledgePoint.position, KnowledgePoint.id)


def upcoming(*, content: dict, group_id: int, age_band: str, limit: int) -> list[dict]:
    """The next knowledge points this group would get, in order (nothing is recorded)."""
    points = db.session.scalars(_candidates(content=content, group_id=group_id, age_band=age_band).limit(limit))
    return [
        {
            "id": point.id,
            "title": point.title,
            "course_id": point.course_id,
            "lesson_id": point.lesson_id,
            "min_age_months": point.min_age_months,
            "max_age_months": point.max_age_months,
        }
        for point in points
    ]


def pick(*, post_id: int, occurrence_id: int | None, content: dict, group_id: int, age_band: str) -> dict | None:
    """The knowledge point this group gets at this occurrence, recorded once (a preview records nothing);
    None when nothing left fits the group's age band."""
    if occurrence_id is not None:
        already = db.session.scalar(
            select(KnowledgePoint).join(
                DripSent,
                and_(
                    DripSent.knowledge_point_id == KnowledgePoint.id,
                    DripSent.post_id == post_id,
                    DripSent.group_id == group_id,
                    DripSent.occurrence_id == occurrence_id,
                ),
            )
        )
        if already is not None:
            return frozen_point(already)
    for _ in range(PICK_ATTEMPTS):
        point = db.session.scalar(_candidates(content=content, group_id=group_id, age_band=age_band).limit(1))
        if point is None:
            return None
        if occurrence_id is None:
            return frozen_point(point)
        try:
            with db.session.begin_nested():
                db.session.add(
                    DripSent(
                        group_id=group_id,
                        knowledge_point_id=point.id,
                        post_id=post_id,
                        occurrence_id=occurrence_id,
                        sent_at=now_utc(),
                    )
                )
        except IntegrityError:
            # Another send took this point (or this occurrence) for the group at the same moment: look again.
            already = db.session.scalar(
                select(DripSent.knowledge_point_id).where(
                    DripSent.post_id == post_id, DripSent.group_id == group_id, DripSent.occurrence_id == occurrence_id
                )
            )
            if already is not None:
                return frozen_point(db.session.get(KnowledgePoint, already))
            continue
        return frozen_point(point)
    raise Conflict("The drip is busy for this group; try again.", code="drip_busy")


def record_fixed(*, post_id: int, occurrence_id: int, group_id: int, point_id: int) -> None:
    """Note that a group got a fixed knowledge point, so drips skip it and partners' reach counts it."""
    try:
        with db.session.begin_nested():
            db.session.add(
                DripSent(
                    group_id=group_id,
                    knowledge_point_id=point_id,
                    post_id=post_id,
                    occurrence_id=occurrence_id,
                    sent_at=now_utc(),
                )
            )
    except IntegrityError:
        return  # received before (or this send is a retry): nothing new to note
