"""Partner content: courses, lessons, knowledge points, bulk upload, submission; operators' review."""

from flask import g, request
from flask_smorest import Blueprint
from marshmallow import ValidationError

from app.content import pgc, revenue, ugc_api
from app.content.schemas import (
    BulkJsonSchema,
    BulkReportSchema,
    CourseDetailSchema,
    CourseInSchema,
    CoursePageSchema,
    CoursePatchSchema,
    CourseSchema,
    DashboardSchema,
    KnowledgePointInSchema,
    KnowledgePointPageSchema,
    KnowledgePointPatchSchema,
    KnowledgePointSchema,
    LessonInSchema,
    LessonPatchSchema,
    LessonSchema,
    ListArgsSchema,
    ReviewDecisionSchema,
    ReviewItemSchema,
    ReviewQueueArgsSchema,
    ReviewQueueSchema,
    ReviewTrailSchema,
    SubmitSchema,
)
from app.core import access
from app.core.errors import ApiError, Invalid
from app.core.http import raw_body, refuse_unreadable_json
from app.core.pagination import PageArgsSchema

blp = Blueprint("content", __name__, url_prefix="/api/v1", description="Partner courses, lessons and knowledge points.")
KIND_PATHS = {"courses": "course", "lessons": "lesson", "knowledge-points": "knowledge_point"}
KIND = "any(" + ", ".join(f'"{k}"' for k in KIND_PATHS) + "):kind_path"
BULK_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "minItems": 1, "items": {"type": "object"}}},
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
        "description": "Rows with lesson, title, body, image_urls, video_url, min_age_months, max_age_months, tags, "
        "product_ids, position. In CSV, list fields are separated by '|'.",
    }
}


@blp.route("/partner/courses", methods=["POST"])
@access.roles("partner")
@blp.arguments(CourseInSchema)
@blp.response(201, CourseSchema)
def create_course(args):
    """Start a course (a draft until submitted for review)."""
    return pgc.create_course(actor=access.current_actor(), **args)


@blp.route("/partner/courses", methods=["GET"])
@access.roles("partner")
@blp.arguments(ListArgsSchema, location="query")
@blp.response(200, CoursePageSchema)
def list_courses(args):
    """Your courses (operators: all), newest first."""
    items, cursor = pgc.list_courses(
        actor=access.current_actor(), status=args["status"], cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": items, "next_cursor": cursor}


@blp.route("/partner/courses/<int(max=9007199254740992):course_id>", methods=["GET"])
@access.roles("partner")
@blp.response(200, CourseDetailSchema)
def get_course(course_id: int):
    """One of your courses with its lessons in order."""
    course, lessons = pgc.get_course(course_id=course_id, actor=access.current_actor())
    return {**{column.key: getattr(course, column.key) for column in course.__table__.columns}, "lessons": lessons}


@blp.route("/partner/courses/<int(max=9007199254740992):course_id>", methods=["PATCH"])
@access.roles("partner")
@blp.arguments(CoursePatchSchema)
@blp.response(200, CourseSchema)
def update_course(args, course_id: int):
    """Change a course; an approved course goes back to review."""
    return pgc.update_course(course_id=course_id, actor=access.current_actor(), changes=args)


@blp.route("/partner/courses/<int(max=9007199254740992):course_id>/lessons", methods=["POST"])
@access.roles("partner")
@blp.arguments(LessonInSchema)
@blp.response(201, LessonSchema)
def create_lesson(args, course_id: int):
    """Add a lesson to your course."""
    return pgc.create_lesson(course_id=course_id, actor=access.current_actor(), **args)


@blp.route("/partner/lessons/<int(max=9007199254740992):lesson_id>", methods=["PATCH"])
@access.roles("partner")
@blp.arguments(LessonPatchSchema)
@blp.response(200, LessonSchema)
def update_lesson(args, lesson_id: int):
    """Change a lesson; an approved lesson goes back to review."""
    return pgc.update_lesson(lesson_id=lesson_id, actor=access.current_actor(), changes=args)


@blp.route("/partner/lessons/<int(max=9007199254740992):lesson_id>/knowledge-points", methods=["POST"])
@access.roles("partner")
@blp.arguments(KnowledgePointInSchema)
@blp.response(201, KnowledgePointSchema)
def create_knowledge_point(args, lesson_id: int):
    """Add a knowledge point to your lesson (the child age range is required)."""
    return pgc.create_knowledge_point(lesson_id=lesson_id, actor=access.current_actor(), values=args)


@blp.route("/partner/courses/<int(max=9007199254740992):course_id>/knowledge-points", methods=["GET"])
@access.roles("partner")
@blp.arguments(ListArgsSchema, location="query")
@blp.response(200, KnowledgePointPageSchema)
def list_knowledge_points(args, course_id: int):
    """The knowledge points of your course."""
    items, cursor = pgc.list_knowledge_points(
        course_id=course_id,
        actor=access.current_actor(),
        status=args["status"],
        cursor=args["cursor"],
        limit=args["limit"],
    )
    return {"items": items, "next_cursor": cursor}


@blp.route("/partner/knowledge-points/<int(max=9007199254740992):knowledge_point_id>", methods=["GET"])
@access.roles("partner")
@blp.response(200, KnowledgePointSchema)
def get_knowledge_point(knowledge_point_id: int):
    """One of your knowledge points."""
    return pgc.get_knowledge_point(knowledge_point_id=knowledge_point_id, actor=access.current_actor())


@blp.route("/partner/knowledge-points/<int(max=9007199254740992):knowledge_point_id>", methods=["PATCH"])
@access.roles("partner")
@blp.arguments(KnowledgePointPatchSchema)
@blp.response(200, KnowledgePointSchema)
def update_knowledge_point(args, knowledge_point_id: int):
    """Change a knowledge point; an approved one goes back to review, what was posted stays posted."""
    return pgc.update_knowledge_point(knowledge_point_id=knowledge_point_id, actor=access.current_actor(), changes=args)


@blp.route("/partner/courses/<int(max=9007199254740992):course_id>/knowledge-points/bulk", methods=["POST"])
@access.roles("partner")
@raw_body
@blp.doc(**BULK_DOC)
@blp.response(200, BulkReportSchema)
def bulk_upload(course_id: int):
    """Upload many knowledge points (JSON or CSV); good rows are kept, bad rows reported by number."""
    if request.mimetype == "text/csv":
        rows = pgc.read_csv(request.get_data())
    elif request.is_json:
        refuse_unreadable_json(request.get_data(cache=True))  # a raw-body view: the app-wide check skips it
        payload = request.get_json(silent=True)
        if payload is None:
            raise ApiError("The body is not valid JSON.", status=400, code="malformed_json")
        try:
            items = BulkJsonSchema().load(payload if isinstance(payload, dict) else {"items": None})["items"]
        except ValidationError as exc:
            raise Invalid("The request is not valid; see errors for each field.", errors=exc.messages) from exc
        rows = list(enumerate(items, start=1))
    else:
        raise ApiError("Send application/json or text/csv.", status=415, code="unsupported_media_type")
    report = pgc.bulk_upload(course_id=course_id, actor=access.current_actor(), rows=rows)
    return {"created": report.created, "lessons_created": report.lessons_created, "errors": report.errors}


@blp.route(f"/partner/<{KIND}>/<int(max=9007199254740992):item_id>/submit", methods=["POST"])
@access.roles("partner")
@blp.response(200, SubmitSchema)
def submit(kind_path: str, item_id: int):
    """Send your item for review (a course or lesson takes its draft and rejected children along)."""
    return {"submitted": pgc.submit(kind=KIND_PATHS[kind_path], item_id=item_id, actor=access.current_actor())}


@blp.route(f"/partner/<{KIND}>/<int(max=9007199254740992):item_id>/reviews", methods=["GET"])
@access.roles("partner")
@blp.response(200, ReviewTrailSchema)
def review_trail(kind_path: str, item_id: int):
    """The review history of your item."""
    return {"items": pgc.review_trail(kind=KIND_PATHS[kind_path], item_id=item_id, actor=access.current_actor())}


@blp.route("/admin/content/reviews", methods=["GET"])
@access.roles("operator")
@blp.arguments(ReviewQueueArgsSchema, location="query")
@blp.response(200, ReviewQueueSchema)
def review_queue(args):
    """Items waiting for review, oldest first."""
    items, cursor = pgc.review_queue(kind=args["kind"], cursor=args["cursor"], limit=args["limit"])
    return {
        "items": [
            {
                "kind": args["kind"],
                "id": x.id,
                "partner_id": x.partner_id,
                "title": x.title,
                "status": x.status,
                "updated_at": x.updated_at,
            }
            for x in items
        ],
        "next_cursor": cursor,
    }


@blp.route(f"/admin/content/<{KIND}>/<int(max=9007199254740992):item_id>/review", methods=["POST"])
@access.roles("operator")
@blp.arguments(ReviewDecisionSchema)
@blp.response(200, ReviewItemSchema)
def decide(args, kind_path: str, item_id: int):
    """Approve, or reject with a reason, an item waiting for review."""
    kind = KIND_PATHS[kind_path]
    item = pgc.review(
        kind=kind, item_id=item_id, operator_id=g.user.id, decision=args["decision"], reason=args["reason"]
    )
    return {
        "kind": kind,
        "id": item.id,
        "partner_id": item.partner_id,
        "title": item.title,
        "status": item.status,
        "updated_at": item.updated_at,
    }


@blp.route("/partner/dashboard", methods=["GET"])
@access.roles("partner")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, DashboardSchema)
def partner_dashboard(args):
    """Your knowledge points: deliveries, reach, views, clicks, orders, GMV and content-share earnings each."""
    items, cursor = revenue.partner_dashboard(partner_id=g.user.id, cursor=args["cursor"], limit=args["limit"])
    return {"items": items, "next_cursor": cursor}


@blp.route("/knowledge-points/<int(max=9007199254740992):knowledge_point_id>", methods=["GET"])
@access.public
@blp.response(200, KnowledgePointSchema)
def view_knowledge_point(knowledge_point_id: int):
    """An approved knowledge point as the mini-program shows it (the view is counted)."""
    return revenue.view_knowledge_point(knowledge_point_id=knowledge_point_id)


blueprints = [blp, ugc_api.blp]
