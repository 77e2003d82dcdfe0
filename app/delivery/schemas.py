from datetime import UTC

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from app.core.clock import EARLIEST, LATEST
from app.core.pagination import PageArgsSchema, PageSchema
from app.delivery import kinds
from app.delivery.models import DELIVERY_STATES, POST_STATUSES, RETRYABLE_STATES, SCHEDULE_KINDS
from app.groups.service import AGE_BANDS, CHANNELS

# Beyond these, converting to UTC overflows (a 500); no real window of figures reaches them.
MOMENT = validate.Range(min=EARLIEST, max=LATEST)
ID_RANGE = validate.Range(min=1, max=2**53)
Id = lambda **kw: fields.Integer(validate=ID_RANGE, **kw)  # noqa: E731
# Years 2000–2199, within the bounds of every instant taken from outside (app.core.clock), where no zone's
# offset can carry a wall time past datetime's limits (a 500 while storing a post's first occurrence).
LOCAL_DATETIME = validate.Regexp(
    r"^2[01]\d\d-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$", error="Use YYYY-MM-DDTHH:MM (local time, years 2000–2199)."
)


class TargetFilterSchema(Schema):
    institution_id = Id(load_default=None, allow_none=True)
    class_id = Id(load_default=None, allow_none=True)
    age_bands = fields.List(
        fields.String(validate=validate.OneOf(AGE_BANDS)),
        load_default=list,
        validate=validate.Length(max=len(AGE_BANDS)),
    )
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=32)),
        load_default=list,
        validate=validate.Length(max=10),
        metadata={"description": "Groups carrying all of these tags."},
    )
    channels = fields.List(
        fields.String(validate=validate.OneOf(CHANNELS)), load_default=list, validate=validate.Length(max=len(CHANNELS))
    )


class TargetsSchema(Schema):
    group_ids = fields.List(Id(), validate=validate.Length(min=1, max=2000))
    filter = fields.Nested(TargetFilterSchema, metadata={"description": "Resolved each time the post goes out."})

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("group_ids" in data) == ("filter" in data):
            raise ValidationError("Give either group_ids or filter.", "group_ids")


class ScheduleSchema(Schema):
    """Local wall times; each group's own time zone applies."""

    kind = fields.String(required=True, validate=validate.OneOf(SCHEDULE_KINDS))
    at = fields.String(validate=LOCAL_DATETIME, metadata={"description": "once: local date-time."})
    time = fields.String(
        validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"), metadata={"description": "daily/weekly: HH:MM."}
    )
    weekdays = fields.List(
        fields.Integer(validate=validate.Range(min=1, max=7)),
        validate=validate.Length(min=1, max=7),
        metadata={"description": "weekly: 1 = Monday … 7 = Sunday."},
    )
    cron = fields.String(
        validate=validate.Length(min=9, max=100),
        metadata={"description": "cron: 5 fields, day of week 0 or 7 = Sunday."},
    )
    until = fields.String(validate=LOCAL_DATETIME, metadata={"description": "Recurring: last local date-time."})

    @validates_schema
    def _fields_for_kind(self, data, **kwargs):
        needed = {"once": "at", "daily": "time", "weekly": "time", "cron": "cron"}[data["kind"]]
        if needed not in data:
            raise ValidationError(f"A {data['kind']} schedule needs '{needed}'.", needed)
        if data["kind"] == "weekly" and "weekdays" not in data:
            raise ValidationError("A weekly schedule needs 'weekdays'.", "weekdays")

    @post_load
    def _only_relevant(self, data, **kwargs):
        keep = {
            "once": ("at",),
            "daily": ("time", "until"),
            "weekly": ("time", "weekdays", "until"),
            "cron": ("cron", "until"),
        }[data["kind"]]
        return {"kind": data["kind"]} | {k: data[k] for k in keep if k in data}


class PostInSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(kinds.names()))
    content = fields.Dict(required=True, metadata={"description": kinds.content_help()})
    targets = fields.Nested(TargetsSchema, required=True)
    schedule = fields.Nested(ScheduleSchema, required=True)


class PostPatchSchema(Schema):
    content = fields.Dict()
    targets = fields.Nested(TargetsSchema)
    schedule = fields.Nested(ScheduleSchema)


class PostSchema(Schema):
    id = fields.Integer()
    author_id = fields.Integer()
    kind = fields.String()
    content = fields.Dict()
    product_id = fields.Integer(allow_none=True)
    target_mode = fields.String()
    group_ids = fields.List(fields.Integer())
    target_filter = fields.Dict(allow_none=True)
    schedule = fields.Dict()
    status = fields.String()
    version = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PostPageSchema(PageSchema):
    items = fields.List(fields.Nested(PostSchema))


class PostListArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(POST_STATUSES))


class PreviewArgsSchema(Schema):
    group_id = Id(required=True)


class SkipSchema(Schema):
    code = fields.String(metadata={"description": "Why, stably: drip_nothing_fits."})
    reason = fields.String()


class PreviewSchema(Schema):
    post_id = fields.Integer()
    group_id = fields.Integer()
    channel = fields.String()
    payload = fields.Dict(
        allow_none=True,
        metadata={
            "description": "Exactly what the channel receives; credentials as <placeholders>. Null when skipped."
        },
    )
    skip = fields.Nested(
        SkipSchema,
        allow_none=True,
        metadata={
            "description": "Set when the group would get nothing now (its delivery would end `skipped`, not failed)."
        },
    )


class OccurrenceSchema(Schema):
    id = fields.Integer()
    timezone = fields.String()
    slot = fields.String(metadata={"description": "Local wall time in the zone."})
    due_at = fields.DateTime()
    state = fields.String()
    post_version = fields.Integer()
    deliveries_count = fields.Integer()
    error = fields.String()
    dispatched_at = fields.DateTime(allow_none=True)


class OccurrenceListSchema(Schema):
    items = fields.List(fields.Nested(OccurrenceSchema))


class DeliverySchema(Schema):
    id = fields.Integer()
    post_id = fields.Integer()
    occurrence_id = fields.Integer()
    group_id = fields.Integer()
    channel = fields.String()
    state = fields.String(metadata={"enum": list(DELIVERY_STATES)})
    attempts = fields.Integer()
    manual_retries = fields.Integer()
    due_at = fields.DateTime()
    available_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    error_code = fields.String(allow_none=True)
    error_message = fields.String()
    created_at = fields.DateTime()


class DeliveryPageSchema(PageSchema):
    items = fields.List(fields.Nested(DeliverySchema))


class PostDeliveryArgsSchema(PageArgsSchema):
    group_id = Id(load_default=None)
    state = fields.String(load_default=None, validate=validate.OneOf(DELIVERY_STATES))


class GroupDeliveryArgsSchema(PageArgsSchema):
    post_id = Id(load_default=None)
    state = fields.String(load_default=None, validate=validate.OneOf(DELIVERY_STATES))


class SandboxMessageSchema(Schema):
    id = fields.Integer()
    delivery_id = fields.Integer()
    group_id = fields.Integer()
    payload = fields.Dict()
    created_at = fields.DateTime()


class SandboxMessagePageSchema(PageSchema):
    items = fields.List(fields.Nested(SandboxMessageSchema))


class RetryInSchema(Schema):
    delivery_ids = fields.List(Id(), validate=validate.Length(min=1, max=10_000))
    post_id = Id()
    group_id = Id()
    states = fields.List(
        fields.String(validate=validate.OneOf(RETRYABLE_STATES)),
        load_default=lambda: ["failed", "dead"],
        validate=validate.Length(min=1, max=len(RETRYABLE_STATES)),
        metadata={"description": "Unknown deliveries may have arrived already: include them knowingly."},
    )


class RetryResultSchema(Schema):
    retried = fields.Integer()


class FiguresWindowArgsSchema(Schema):
    since = fields.AwareDateTime(
        load_default=None, validate=MOMENT, metadata={"description": "Count from this moment (inclusive)."}
    )
    until = fields.AwareDateTime(
        load_default=None, validate=MOMENT, metadata={"description": "Count up to this moment (exclusive)."}
    )

    @post_load
    def in_utc(self, data, **kwargs):
        data = {k: v.astimezone(UTC) if v is not None else None for k, v in data.items()}
        if data["since"] is not None and data["until"] is not None and data["until"] <= data["since"]:
            raise ValidationError("Must be after since.", "until")
        return data


class GroupFiguresSchema(Schema):
    group_id = fields.Integer()
    member_count = fields.Integer()
    fans = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "Members per fan level."}
    )
    posts = fields.Integer()
    deliveries = fields.Dict(keys=fields.String(), values=fields.Integer())
    last_sent_at = fields.DateTime(allow_none=True)
    since = fields.DateTime(allow_none=True)
    until = fields.DateTime(allow_none=True)
    clicks = fields.Integer(metadata={"description": "Counted clicks on share links made for this group."})
    claims = fields.Integer(metadata={"description": "Coupons claimed from this group's cards."})
    orders = fields.Integer(metadata={"description": "Orders attributed to this group (cancelled ones left out)."})
    gmv_fen = fields.Integer(metadata={"description": "Paid amount of the attributed order lines."})
    refunded_fen = fields.Integer()
    net_gmv_fen = fields.Integer(metadata={"description": "gmv_fen minus refunds."})


class UpcomingArgsSchema(Schema):
    group_id = fields.Integer(required=True, validate=ID_RANGE)
    limit = fields.Integer(load_default=5, validate=validate.Range(min=1, max=50))


class UpcomingPointSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    course_id = fields.Integer()
    lesson_id = fields.Integer()
    min_age_months = fields.Integer()
    max_age_months = fields.Integer()


class UpcomingSchema(Schema):
    post_id = fields.Integer()
    group_id = fields.Integer()
    next_at = fields.DateTime(
        allow_none=True, metadata={"description": "When the drip next fires for this group (UTC)."}
    )
    next_outcome = fields.String(
        allow_none=True,
        metadata={
            "enum": ["send", "skip"],
            "description": "What that firing does for the group: send the first item, or skip it (nothing left fits its "
            "age band; the delivery ends `skipped`, which is no failure). Null when nothing is planned.",
        },
    )
    items = fields.List(fields.Nested(UpcomingPointSchema))


class ShareLinkCreateSchema(Schema):
    product_id = fields.Integer(required=True, strict=True, validate=ID_RANGE)
    group_id = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ID_RANGE,
        metadata={
            "description": "A group you are a member (or the host) of; its host earns the host share. 403 `not_a_member` otherwise."
        },
    )
    post_id = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ID_RANGE,
        metadata={
            "description": "A post the group got (needs group_id). 422 `post_requires_group`, `post_not_in_group`."
        },
    )
    content_id = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=ID_RANGE,
        metadata={
            "description": "Content recommending the product (with post_id: the content that post carried); its author "
            "earns the content share. 404 `content_not_found`, 422 `product_not_in_content`, `content_not_in_post`."
        },
    )


class ShareCardSchema(Schema):
    title = fields.String()
    image = fields.String(allow_none=True)
    price_fen = fields.Integer()


class ShareLinkSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    path = fields.String(metadata={"description": "The mini-program page carrying the code."})
    url = fields.String(metadata={"description": "The short link for browsers: redirects and counts the click."})
    product_id = fields.Integer()
    group_id = fields.Integer(allow_none=True)
    post_id = fields.Integer(allow_none=True)
    content_id = fields.Integer(allow_none=True)
    card = fields.Nested(ShareCardSchema)
    code_image = fields.String(metadata={"description": "The mini-program code (PNG data URL); its scene is the code."})
