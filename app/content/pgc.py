"""Partner content use cases: courses, lessons and knowledge points, bulk upload, submission and review.

Review states: draft → pending_review → approved | rejected; a rejected item goes back to review when
resubmitted. Editing an approved item sends it back to pending_review (recorded as resubmitted_by_edit):
it is not postable again until approved, while whatever was already delivered stays delivered.
A knowledge point is postable only when it, its lesson and its course are all approved.
"""

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from marshmallow import ValidationError
from sqlalchemy import func, select

from app.catalog import service as catalog
from app.content import sanitize
from app.content.models import ContentReview, Course, KnowledgePoint, Lesson
from app.content.schemas import BulkRowSchema
from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import ApiError, Conflict, Forbidden, Invalid, NotFound
from app.core.pagination import keyset_page

MODELS = {"course": Course, "lesson": Lesson, "knowledge_point": KnowledgePoint}
BODY_FIELDS = {"course": "description", "knowledge_point": "body"}
CSV_LIST_FIELDS = {"image_urls", "tags", "product_ids"}
CSV_INT_FIELDS = {"min_age_months", "max_age_months", "position"}


@dataclass
class BulkReport:
    created: int = 0
    lessons_created: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def _body_limit() -> int:
    return current_app.config["CONTENT_BODY_MAX_CHARS"]


def _check_body_size(text: str) -> None:
    if len(text) > _body_limit():
        raise ApiError(f"The body is longer than {_body_limit()} characters.", status=413, code="body_too_large")


def _clean(kind: str, values: dict) -> dict:
    """Sanitise the text fields of a create or change."""
    cleaned = dict(values)
    for name in ("title", "summary", "topic"):
        if name in cleaned:
            cleaned[name] = sanitize.plain_text(cleaned[name])
    if "title" in cleaned and not cleaned["title"]:
        raise Invalid("The title is empty once markup is removed.", code="title_blank", errors={"title": ["Blank."]})
    body_field = BODY_FIELDS.get(kind)
    if body_field and body_field in cleaned:
        _check_body_size(cleaned[body_field])
        cleaned[body_field] = sanitize.rich_text(cleaned[body_field])
    if "tags" in cleaned:
        cleaned["tags"] = sanitize.plain_list(cleaned["tags"])
    if cleaned.get("product_ids"):
        catalog.require_products(product_ids=cleaned["product_ids"])
        cleaned["product_ids"] = list(dict.fromkeys(cleaned["product_ids"]))
    return cleaned


def _owned(kind: str, item_id: int, actor: Actor):
    item = db.session.get(MODELS[kind], item_id)
    if item is None:
        raise NotFound(f"No such {kind.replace('_', ' ')}.", code=f"{kind}_not_found")
    if not actor.operator and item.partner_id != actor.id:
        raise Forbidden("This content belongs to another partner.", code="content_not_yours")
    return item


def _trail(kind: str, item_id: int, action: str, actor_id: int, reason: str | None = None) -> None:
    db.session.add(
        ContentReview(
            item_kind=kind, item_id=item_id, action=action, reason=reason, actor_id=actor_id, created_at=now_utc()
        )
    )


def _apply_changes(kind: str, item, changes: dict, actor: Actor) -> None:
    changed = False
    for name, value in changes.items():
        if getattr(item, name) != value:
            setattr(item, name, value)
            changed = True
    if not changed:
        return
    item.updated_at = now_utc()
    if item.status == "approved":
        item.status = "pending_review"
        _trail(kind, item.id, "resubmitted_by_edit", actor.id)


# -- courses ----------------------------------------------------------------------------------------------


def create_course(
    *, actor: Actor, title: str, description: str, topic: str, cover_url: str | None, tags: list[str]
) -> Course:
    """Start a course (draft) owned by the calling partner."""
    values = _clean("course", {"title": title, "description": description, "topic": topic, "tags": tags})
    now = now_utc()
    course = Course(partner_id=actor.id, cover_url=cover_url, status="draft", created_at=now, updated_at=now, **values)
    db.session.add(course)
    db.session.flush()
    return course


def get_course(*, course_id: int, actor: Actor) -> tuple[Course, list[Lesson]]:
    """A course the actor owns, with its lessons in order."""
    course = _owned("course", course_id, actor)
    lessons = list(
        db.session.scalars(select(Lesson).where(Lesson.course_id == course.id).order_by(Lesson.position, Lesson.id))
    )
    return course, lessons


def update_course(*, course_id: int, actor: Actor, changes: dict) -> Course:
    """Change a course; an approved course goes back to review."""
    course = _owned("course", course_id, actor)
    _apply_changes("course", course, _clean("course", changes), actor)
    db.session.flush()
    return course


def list_courses(
    *, actor: Actor, status: str | None, cursor: str | None, limit: int
) -> tuple[list[Course], str | None]:
    """The actor's courses (operators: all), newest first."""
    stmt = select(Course)
    if not actor.operator:
        stmt = stmt.where(Course.partner_id == actor.id)
    if status:
        stmt = stmt.where(Course.status == status)
    return keyset_page(
        stmt, columns=[Course.id], kinds=[int], cursor=cursor, limit=limit, key_of=lambda c: (c.id,), session=db.session
    )


# -- lessons ----------------------------------------------------------------------------------------------


def create_lesson(*, course_id: int, actor: Actor, title: str, summary: str, position: int) -> Lesson:
    """Add a lesson (draft) to a course the actor owns."""
    course = _owned("course", course_id, actor)
    values = _clean("lesson", {"title": title, "summary": summary})
    now = now_utc()
    lesson = Lesson(
        course_id=course.id,
        partner_id=course.partner_id,
        position=position,
        status="draft",
        created_at=now,
        updated_at=now,
        **values,
    )
    db.session.add(lesson)
    db.session.flush()
    return lesson


def update_lesson(*, lesson_id: int, actor: Actor, changes: dict) -> Lesson:
    """Change a lesson; an approved lesson goes back to review."""
    lesson = _owned("lesson", lesson_id, actor)
    _apply_changes("lesson", lesson, _clean("lesson", changes), actor)
    db.session.flush()
    return lesson


# -- knowledge points -------------------------------------------------------------------------------------


def create_knowledge_point(*, lesson_id: int, actor: Actor, values: dict) -> KnowledgePoint:
    """Add a knowledge point (draft) to a lesson the actor owns."""
    lesson = _owned("lesson", lesson_id, actor)
    cleaned = _clean("knowledge_point", values)
    now = now_utc()
    point = KnowledgePoint(
        lesson_id=lesson.id,
        course_id=lesson.course_id,
        partner_id=lesson.partner_id,
        status="draft",
        created_at=now,
        updated_at=now,
        **cleaned,
    )
    db.session.add(point)
    db.session.flush()
    return point


def get_knowledge_point(*, knowledge_point_id: int, actor: Actor) -> KnowledgePoint:
    """A knowledge point the actor owns."""
    return _owned("knowledge_point", knowledge_point_id, actor)


def update_knowledge_point(*, knowledge_point_id: int, actor: Actor, changes: dict) -> KnowledgePoint:
    """Change a knowledge point; an approved one goes back to review (what was posted stays posted)."""
    point = _owned("knowledge_point", knowledge_point_id, actor)
    low = changes.get("min_age_months", point.min_age_months)
    high = changes.get("max_age_months", point.max_age_months)
    if low > high:
        raise Invalid(
            "The age range is reversed.",
            code="validation_error",
            errors={"min_age_months": ["Must not exceed max_age_months."]},
        )
    _apply_changes("knowledge_point", point, _clean("knowledge_point", changes), actor)
    db.session.flush()
    return point


def list_knowledge_points(
    *, course_id: int, actor: Actor, status: str | None, cursor: str | None, limit: int
) -> tuple[list[KnowledgePoint], str | None]:
    """The knowledge points of a course the actor owns, in creation order."""
    course = _owned("course", course_id, actor)
    stmt = select(KnowledgePoint).where(KnowledgePoint.course_id == course.id)
    if status:
        stmt = stmt.where(KnowledgePoint.status == status)
    return keyset_page(
        stmt,
        columns=[KnowledgePoint.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda p: (p.id,),
        descending=False,
        session=db.session,
    )


# -- bulk upload ------------------------------------------------------------------------------------------


def _csv_value(name: str, value: str) -> Any:
    """CSV holds only text: shape it for the schema and leave the judging to the schema."""
    value = value.strip()
    if name in CSV_LIST_FIELDS:
        parts = [part.strip() for part in value.split("|") if part.strip()]
        return [int(p) if name == "product_ids" and p.isdigit() else p for p in parts]
    if name in CSV_INT_FIELDS:
        if value == "":
            return None
        return int(value) if value.lstrip("-").isdigit() and len(value) < 12 else value
    if name == "video_url" and value == "":
        return None
    return value


def read_csv(data: bytes) -> list[tuple[int, Any]]:
    """Parse a CSV upload into (line number, row) pairs; a file that is not UTF-8 CSV is a 422."""
    try:
        text = data.decode("utf-8-sig")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = []
        for row in reader:
            if not any((v or "").strip() for k, v in row.items() if k is not None and isinstance(v, str)):
                continue
            rows.append(
                (
                    reader.line_num,
                    {
                        k: _csv_value(k, v)
                        for k, v in row.items()
                        if k is not None
                        and isinstance(v, str)
                        and not (k in CSV_INT_FIELDS and v.strip() == "" and k != "position")
                    },
                )
            )
    except (UnicodeDecodeError, csv.Error) as exc:
        raise Invalid("The upload is not a UTF-8 CSV file.", code="bad_csv", errors={"file": [str(exc)]}) from exc
    return rows


def bulk_upload(*, course_id: int, actor: Actor, rows: list[tuple[int, Any]]) -> BulkReport:
    """Create many knowledge points in a course at once; bad rows are reported by number, good rows kept."""
    course = _owned("course", course_id, actor)
    limit = current_app.config["CONTENT_BULK_MAX_ROWS"]
    if len(rows) > limit:
        raise ApiError(f"At most {limit} rows per upload.", status=413, code="too_many_rows")
    if not rows:
        raise Invalid("The upload has no rows.", code="no_rows")
    schema = BulkRowSchema()
    report = BulkReport()
    good: list[tuple[dict, str]] = []
    wanted_products: set[int] = set()
    for number, raw in rows:
        if not isinstance(raw, dict):
            report.errors.append({"row": number, "errors": {"_schema": ["A row must be an object."]}})
            continue
        try:
            row = schema.load(raw)
            lesson_title = sanitize.plain_text(row.pop("lesson"))
            if not lesson_title:
                raise ValidationError({"lesson": ["Blank once markup is removed."]})
            if len(row["body"]) > _body_limit():
                raise ValidationError({"body": [f"Longer than {_body_limit()} characters."]})
            cleaned = _clean("knowledge_point", {k: v for k, v in row.items() if k != "product_ids"})
        except ValidationError as exc:
            report.errors.append({"row": number, "errors": exc.messages})
            continue
        except Invalid as exc:
            report.errors.append({"row": number, "errors": exc.errors or {"_schema": [exc.message]}})
            continue
        cleaned["product_ids"] = list(dict.fromkeys(row["product_ids"]))
        wanted_products.update(cleaned["product_ids"])
        good.append(({"number": number, **cleaned}, lesson_title))
    known = _known_products(wanted_products)
    lessons = {
        lesson.title: lesson for lesson in db.session.scalars(select(Lesson).where(Lesson.course_id == course.id))
    }
    next_position = db.session.scalar(select(func.max(Lesson.position)).where(Lesson.course_id == course.id)) or 0
    now = now_utc()
    order_in_lesson: dict[str, int] = {}
    for values, lesson_title in good:
        number = values.pop("number")
        missing = sorted(set(values["product_ids"]) - known)
        if missing:
            report.errors.append({"row": number, "errors": {"product_ids": [f"Unknown products: {missing}."]}})
            continue
        lesson = lessons.get(lesson_title)
        if lesson is None:
            next_position += 1
            lesson = Lesson(
                course_id=course.id,
                partner_id=course.partner_id,
                title=lesson_title,
                summary="",
                position=next_position,
                status="draft",
                created_at=now,
                updated_at=now,
            )
            db.session.add(lesson)
            db.session.flush()
            lessons[lesson_title] = lesson
            report.lessons_created += 1
        order_in_lesson[lesson_title] = order_in_lesson.get(lesson_title, 0) + 1
        if values.get("position") is None:
            values["position"] = order_in_lesson[lesson_title]
        db.session.add(
            KnowledgePoint(
                lesson_id=lesson.id,
                course_id=course.id,
                partner_id=course.partner_id,
                status="draft",
                created_at=now,
                updated_at=now,
                **values,
            )
        )
        report.created += 1
    db.session.flush()
    report.errors.sort(key=lambda e: e["row"])
    return report


def _known_products(product_ids: set[int]) -> set[int]:
    try:
        return set(catalog.require_products(product_ids=sorted(product_ids)))
    except Invalid as exc:
        return product_ids - set(exc.errors["product_ids"])


# -- review -----------------------------------------------------------------------------------------------


def submit(*, kind: str, item_id: int, actor: Actor) -> dict[str, int]:
    """Send an item for review; a course or lesson takes its draft and rejected children along."""
    item = _owned(kind, item_id, actor)
    items: list[tuple[str, Any]] = [(kind, item)]
    if kind == "course":
        items += [("lesson", x) for x in db.session.scalars(select(Lesson).where(Lesson.course_id == item.id))]
        items += [
            ("knowledge_point", x)
            for x in db.session.scalars(select(KnowledgePoint).where(KnowledgePoint.course_id == item.id))
        ]
    elif kind == "lesson":
        items += [
            ("knowledge_point", x)
            for x in db.session.scalars(select(KnowledgePoint).where(KnowledgePoint.lesson_id == item.id))
        ]
    if item.status in ("pending_review", "approved") and len(items) == 1:
        raise Conflict(f"This item is already {item.status.replace('_', ' ')}.", code="not_submittable")
    counts = dict.fromkeys(MODELS, 0)
    now = now_utc()
    for item_kind, entry in items:
        if entry.status in ("draft", "rejected"):
            entry.status = "pending_review"
            entry.updated_at = now
            _trail(item_kind, entry.id, "submitted", actor.id)
            counts[item_kind] += 1
    if not any(counts.values()):
        raise Conflict("Nothing here is a draft or rejected.", code="not_submittable")
    db.session.flush()
    return counts


def review(*, kind: str, item_id: int, operator_id: int, decision: str, reason: str | None):
    """An operator approves or rejects (with a reason) an item waiting for review."""
    item = db.session.get(MODELS[kind], item_id)
    if item is None:
        raise NotFound(f"No such {kind.replace('_', ' ')}.", code=f"{kind}_not_found")
    if item.status != "pending_review":
        raise Conflict(
            "Only items waiting for review can be decided.", code="not_pending_review", errors={"status": item.status}
        )
    item.status = "approved" if decision == "approve" else "rejected"
    item.reject_reason = reason.strip() if decision == "reject" and reason else None
    item.updated_at = now_utc()
    _trail(kind, item.id, item.status, operator_id, item.reject_reason)
    db.session.flush()
    return item


def review_queue(*, kind: str, cursor: str | None, limit: int) -> tuple[list, str | None]:
    """Items of one kind waiting for review, oldest first."""
    model = MODELS[kind]
    stmt = select(model).where(model.status == "pending_review")
    return keyset_page(
        stmt,
        columns=[model.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda x: (x.id,),
        descending=False,
        session=db.session,
    )


def review_trail(*, kind: str, item_id: int, actor: Actor) -> list[ContentReview]:
    """What happened to an item in review, oldest first."""
    _owned(kind, item_id, actor)
    return list(
        db.session.scalars(
            select(ContentReview)
            .where(ContentReview.item_kind == kind, ContentReview.item_id == item_id)
            .order_by(ContentReview.id)
        )
    )


def postable_knowledge_point(*, knowledge_point_id: int) -> KnowledgePoint:
    """A knowledge point that may be posted (it, its lesson and its course approved), else 404/409."""
    point = db.session.get(KnowledgePoint, knowledge_point_id)
    if point is None:
        raise NotFound("No such knowledge point.", code="knowledge_point_not_found")
    lesson = db.session.get(Lesson, point.lesson_id)
    course = db.session.get(Course, point.course_id)
    if not (point.status == lesson.status == course.status == "approved"):
        raise Conflict("Only approved content can be posted.", code="content_not_approved")
    return point
