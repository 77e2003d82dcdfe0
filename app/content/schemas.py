"""Request and response shapes of the content API."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.content.models import AGE_BAND_MONTHS, AGE_MAX_MONTHS, AGE_MIN_MONTHS, ITEM_KINDS, REVIEW_STATES
from app.core.pagination import PageArgsSchema, PageSchema

URL = fields.Url(schemes={"http", "https"}, validate=validate.Length(max=1024))
AGE = validate.Range(min=AGE_MIN_MONTHS, max=AGE_MAX_MONTHS)
ID = validate.Range(min=1, max=2**53)
POSITION = validate.Range(min=0, max=1_000_000)
BODY_DOC = {"description": "Rich text (HTML, sanitised on save). Longer than the configured limit: 413 body_too_large."}


def _tags(**kwargs):
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=32)), validate=validate.Length(max=20), **kwargs
    )


def _check_age_order(data: dict) -> None:
    low, high = data.get("min_age_months"), data.get("max_age_months")
    if low is not None and high is not None and low > high:
        raise ValidationError("Must not exceed max_age_months.", field_name="min_age_months")


class CourseInSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=128))
    description = fields.String(load_default="", metadata=BODY_DOC)
    topic = fields.String(load_default="", validate=validate.Length(max=32))
    cover_url = fields.Url(
        schemes={"http", "https"}, load_default=None, allow_none=True, validate=validate.Length(max=1024)
    )
    tags = _tags(load_default=list)


class CoursePatchSchema(CourseInSchema):
    title = fields.String(validate=validate.Length(min=1, max=128))
    description = fields.String(metadata=BODY_DOC)
    topic = fields.String(validate=validate.Length(max=32))
    cover_url = fields.Url(schemes={"http", "https"}, allow_none=True, validate=validate.Length(max=1024))
    tags = _tags()

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Send at least one field to change.")


class ReviewStateSchema(Schema):
    status = fields.String(metadata={"enum": list(REVIEW_STATES)})
    reject_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CourseSchema(ReviewStateSchema):
    id = fields.Integer()
    partner_id = fields.Integer()
    title = fields.String()
    description = fields.String()
    topic = fields.String()
    cover_url = fields.String(allow_none=True)
    tags = fields.List(fields.String())


class LessonInSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=128))
    summary = fields.String(load_default="", validate=validate.Length(max=2000))
    position = fields.Integer(load_default=0, strict=True, validate=POSITION)


class LessonPatchSchema(LessonInSchema):
    title = fields.String(validate=validate.Length(min=1, max=128))
    summary = fields.String(validate=validate.Length(max=2000))
    position = fields.Integer(strict=True, validate=POSITION)

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Send at least one field to change.")


class LessonSchema(ReviewStateSchema):
    id = fields.Integer()
    course_id = fields.Integer()
    title = fields.String()
    summary = fields.String()
    position = fields.Integer()


class CourseDetailSchema(CourseSchema):
    lessons = fields.List(fields.Nested(LessonSchema))


class KnowledgePointInSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=128))
    body = fields.String(load_default="", metadata=BODY_DOC)
    image_urls = fields.List(URL, load_default=list, validate=validate.Length(max=9))
    video_url = fields.Url(
        schemes={"http", "https"}, load_default=None, allow_none=True, validate=validate.Length(max=1024)
    )
    min_age_months = fields.Integer(
        required=True,
        strict=True,
        validate=AGE,
        metadata={"description": "Child age in months; negative is pregnancy."},
    )
    max_age_months = fields.Integer(required=True, strict=True, validate=AGE)
    tags = _tags(load_default=list)
    product_ids = fields.List(
        fields.Integer(strict=True, validate=ID), load_default=list, validate=validate.Length(max=9)
    )
    position = fields.Integer(load_default=0, strict=True, validate=POSITION)

    @validates_schema
    def _ages(self, data, **kwargs):
        _check_age_order(data)


class KnowledgePointPatchSchema(KnowledgePointInSchema):
    title = fields.String(validate=validate.Length(min=1, max=128))
    body = fields.String(metadata=BODY_DOC)
    image_urls = fields.List(URL, validate=validate.Length(max=9))
    video_url = fields.Url(schemes={"http", "https"}, allow_none=True, validate=validate.Length(max=1024))
    min_age_months = fields.Integer(strict=True, validate=AGE)
    max_age_months = fields.Integer(strict=True, validate=AGE)
    tags = _tags()
    product_ids = fields.List(fields.Integer(strict=True, validate=ID), validate=validate.Length(max=9))
    position = fields.Integer(strict=True, validate=POSITION)

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Send at least one field to change.")


class BulkRowSchema(KnowledgePointInSchema):
    """One bulk-upload row: the lesson is named by title and created in the course when new."""

    lesson = fields.String(required=True, validate=validate.Length(min=1, max=128))
    position = fields.Integer(load_default=None, allow_none=True, strict=True, validate=POSITION)


class BulkJsonSchema(Schema):
    items = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))


class KnowledgePointSchema(ReviewStateSchema):
    id = fields.Integer()
    lesson_id = fields.Integer()
    course_id = fields.Integer()
    partner_id = fields.Integer()
    title = fields.String()
    body = fields.String()
    image_urls = fields.List(fields.String())
    video_url = fields.String(allow_none=True)
    min_age_months = fields.Integer()
    max_age_months = fields.Integer()
    tags = fields.List(fields.String())
    product_ids = fields.List(fields.Integer())
    position = fields.Integer()


class CoursePageSchema(PageSchema):
    items = fields.List(fields.Nested(CourseSchema))


class KnowledgePointPageSchema(PageSchema):
    items = fields.List(fields.Nested(KnowledgePointSchema))


class BulkErrorSchema(Schema):
    row = fields.Integer(metadata={"description": "1-based item index (JSON) or line number (CSV, header is line 1)."})
    errors = fields.Raw()


class BulkReportSchema(Schema):
    created = fields.Integer()
    lessons_created = fields.Integer()
    errors = fields.List(fields.Nested(BulkErrorSchema))


class SubmitSchema(Schema):
    submitted = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "How many items of each kind went to review."},
    )


class ReviewDecisionSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(("approve", "reject")))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=500))

    @validates_schema
    def _reason_for_reject(self, data, **kwargs):
        if data.get("decision") == "reject" and not (data.get("reason") or "").strip():
            raise ValidationError("A rejection needs a reason.", field_name="reason")


class ReviewQueueArgsSchema(PageArgsSchema):
    kind = fields.String(load_default="knowledge_point", validate=validate.OneOf(ITEM_KINDS))


class ReviewItemSchema(Schema):
    kind = fields.String()
    id = fields.Integer()
    partner_id = fields.Integer()
    title = fields.String()
    status = fields.String()
    updated_at = fields.DateTime()


class ReviewQueueSchema(PageSchema):
    items = fields.List(fields.Nested(ReviewItemSchema))


class ReviewEntrySchema(Schema):
    id = fields.Integer()
    action = fields.String()
    reason = fields.String(allow_none=True)
    actor_id = fields.Integer()
    created_at = fields.DateTime()


class ReviewTrailSchema(Schema):
    items = fields.List(fields.Nested(ReviewEntrySchema))


class ListArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(REVIEW_STATES))


# -- member posts -----------------------------------------------------------------------------------------

AGE_BANDS = tuple(AGE_BAND_MONTHS)
POST_TEXT_DOC = {
    "description": "Text with light markup (p, br, b, strong, i, em), sanitised on save. "
    "Longer than the configured limit: 413 body_too_large."
}


class PostInSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1), metadata=POST_TEXT_DOC)
    image_urls = fields.List(URL, load_default=list, validate=validate.Length(max=9))
    product_ids = fields.List(
        fields.Integer(strict=True, validate=ID), load_default=list, validate=validate.Length(max=9)
    )
    group_id = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=ID,
        metadata={"description": "A group you are in; the post shows in its feed."},
    )
    min_age_months = fields.Integer(
        strict=True, validate=AGE, metadata={"description": "Defaults to the group's band."}
    )
    max_age_months = fields.Integer(strict=True, validate=AGE)
    publish = fields.Boolean(load_default=False)
    accept_license_version = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=16))

    @validates_schema
    def _ages(self, data, **kwargs):
        _check_age_order(data)


class PostPatchSchema(Schema):
    text = fields.String(validate=validate.Length(min=1), metadata=POST_TEXT_DOC)
    image_urls = fields.List(URL, validate=validate.Length(max=9))
    product_ids = fields.List(fields.Integer(strict=True, validate=ID), validate=validate.Length(max=9))
    group_id = fields.Integer(allow_none=True, strict=True, validate=ID)
    min_age_months = fields.Integer(strict=True, validate=AGE)
    max_age_months = fields.Integer(strict=True, validate=AGE)

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Send at least one field to change.")
        _check_age_order(data)


class PublishSchema(Schema):
    accept_license_version = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=16))


class ProductCardSchema(Schema):
    product_id = fields.Integer()
    title = fields.String()
    image = fields.String(allow_none=True)
    price_fen = fields.Integer()
    share_code = fields.String(
        allow_none=True,
        metadata={
            "description": "The author's share code (published posts): opens the product crediting her content share."
        },
    )


class ShareCodeSchema(Schema):
    product_id = fields.Integer()
    share_code = fields.String()


class ShareCodeListSchema(Schema):
    items = fields.List(fields.Nested(ShareCodeSchema))


class DashboardRowSchema(Schema):
    id = fields.Integer(metadata={"description": "The post or knowledge point."})
    title = fields.String()
    status = fields.String()
    deliveries = fields.Integer(metadata={"description": "Knowledge points: times delivered into groups."})
    reach = fields.Integer(
        metadata={"description": "Posts: views; knowledge points: members of the groups at each delivery."}
    )
    views = fields.Integer()
    clicks = fields.Integer()
    orders = fields.Integer()
    gmv_fen = fields.Integer()
    earnings_fen = fields.Integer(metadata={"description": "Content shares attributed (before any refund clawback)."})


class DashboardSchema(PageSchema):
    items = fields.List(fields.Nested(DashboardRowSchema))


class PostSchema(Schema):
    id = fields.Integer()
    author_id = fields.Integer()
    group_id = fields.Integer(allow_none=True)
    text = fields.String()
    image_urls = fields.List(fields.String())
    min_age_months = fields.Integer(allow_none=True)
    max_age_months = fields.Integer(allow_none=True)
    status = fields.String(metadata={"enum": ["draft", "published", "rejected", "taken_down"]})
    reject_reason = fields.String(allow_none=True)
    hidden = fields.Boolean()
    report_count = fields.Integer()
    view_count = fields.Integer()
    score = fields.Integer()
    license_version = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)
    products = fields.List(fields.Nested(ProductCardSchema))


class PostPageSchema(PageSchema):
    items = fields.List(fields.Nested(PostSchema))


class FeedArgsSchema(PageArgsSchema):
    group_id = fields.Integer(load_default=None, validate=ID)
    product_id = fields.Integer(load_default=None, validate=ID)
    age_band = fields.String(load_default=None, validate=validate.OneOf(AGE_BANDS))
    sort = fields.String(load_default="newest", validate=validate.OneOf(("newest", "popular")))


class MyPostsArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(("draft", "published", "rejected", "taken_down")))


class ReportInSchema(Schema):
    reason = fields.String(load_default="", validate=validate.Length(max=500))


class ModerateSchema(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(("restore", "reject", "take_down")))
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=500))

    @validates_schema
    def _reason(self, data, **kwargs):
        if data.get("decision") in ("reject", "take_down") and not (data.get("reason") or "").strip():
            raise ValidationError("Rejecting or taking down needs a reason.", field_name="reason")


class LicenseSchema(Schema):
    version = fields.String()
    accepted_at = fields.DateTime(allow_none=True)


class LicenseAcceptSchema(Schema):
    version = fields.String(required=True, validate=validate.Length(min=1, max=16))
