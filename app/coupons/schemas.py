from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.core.fields import NO_NUL, fen, ident, text
from app.core.pagination import PageArgsSchema, PageSchema
from app.coupons.models import COUPON_STATUSES, TEMPLATE_STATUSES
from app.coupons.pricing import KINDS, SCOPES


class UtcDateTime(fields.AwareDateTime):
    """An instant with its offset, loaded as UTC (naive is refused); one whose UTC falls outside years 1–9999 is invalid."""

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        try:
            return instant.astimezone(UTC)
        except OverflowError as exc:
            raise ValidationError("Not a representable instant in UTC.") from exc


def id_list() -> fields.List:
    return fields.List(ident(), validate=validate.Length(max=200), load_default=None)


class TemplateFieldsSchema(Schema):
    name = fields.String(validate=[validate.Length(min=1, max=64), NO_NUL])
    description = text(255)
    kind = fields.String(validate=validate.OneOf(KINDS))
    amount_off_fen = fen()
    threshold_fen = fen(metadata={"description": "Minimum eligible spend (required for threshold coupons)."})
    percent_off_bp = fields.Integer(
        strict=True,
        validate=validate.Range(min=0, max=9999),
        metadata={"description": "Percent off in basis points (2000 = 20% off = 8折)."},
    )
    cap_fen = fen(metadata={"description": "Largest discount of a percent coupon."})
    scope = fields.String(validate=validate.OneOf(SCOPES))
    category_ids = id_list()
    product_ids = id_list()
    excluded_category_ids = id_list()
    excluded_product_ids = id_list()
    validity_kind = fields.String(validate=validate.OneOf(("window", "days")))
    valid_from = UtcDateTime(allow_none=True)
    valid_until = UtcDateTime(allow_none=True)
    valid_days = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=3650))
    claim_starts_at = UtcDateTime()
    claim_ends_at = UtcDateTime()
    stock = fields.Integer(strict=True, validate=validate.Range(min=1, max=10_000_000))
    per_user_limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=100))
    per_day_limit = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=100))
    claim_gate = fields.String(
        validate=validate.OneOf(("redis", "sql")),
        metadata={"description": "redis (flash drops) or sql (the database alone)."},
    )
    group_id = ident(allow_none=True, metadata={"description": "Operators only; a host's comes from the budget."})


class TemplateCreateSchema(TemplateFieldsSchema):
    name = fields.String(required=True, validate=[validate.Length(min=1, max=64), NO_NUL])
    description = text(255, load_default="")
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    amount_off_fen = fen(load_default=0)
    threshold_fen = fen(load_default=0)
    percent_off_bp = fields.Integer(strict=True, load_default=0, validate=validate.Range(min=0, max=9999))
    cap_fen = fen(load_default=0)
    scope = fields.String(load_default="all", validate=validate.OneOf(SCOPES))
    validity_kind = fields.String(required=True, validate=validate.OneOf(("window", "days")))
    valid_from = UtcDateTime(load_default=None, allow_none=True)
    valid_until = UtcDateTime(load_default=None, allow_none=True)
    valid_days = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1, max=3650)
    )
    claim_starts_at = UtcDateTime(required=True)
    claim_ends_at = UtcDateTime(required=True)
    stock = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=10_000_000))
    per_user_limit = fields.Integer(strict=True, load_default=1, validate=validate.Range(min=1, max=100))
    per_day_limit = fields.Integer(
        strict=True, load_default=None, allow_none=True, validate=validate.Range(min=1, max=100)
    )
    claim_gate = fields.String(load_default="redis", validate=validate.OneOf(("redis", "sql")))
    group_id = ident(load_default=None, allow_none=True)
    budget_id = ident(
        load_default=None,
        allow_none=True,
        metadata={"description": "Required for hosts: the budget this template draws on."},
    )


class TemplateStatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(TEMPLATE_STATUSES))


class TemplateListArgsSchema(PageArgsSchema):
    status = fields.String(load_default=None, validate=validate.OneOf(TEMPLATE_STATUSES))


class TemplateSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    kind = fields.String()
    amount_off_fen = fields.Integer()
    threshold_fen = fields.Integer()
    percent_off_bp = fields.Integer()
    cap_fen = fields.Integer()
    scope = fields.String()
    category_ids = fields.List(fields.Integer())
    product_ids = fields.List(fields.Integer())
    excluded_category_ids = fields.List(fields.Integer())
    excluded_product_ids = fields.List(fields.Integer())
    validity_kind = fields.String()
    valid_from = fields.DateTime(allow_none=True)
    valid_until = fields.DateTime(allow_none=True)
    valid_days = fields.Integer(allow_none=True)
    claim_starts_at = fields.DateTime()
    claim_ends_at = fields.DateTime()
    stock = fields.Integer()
    claimed = fields.Integer()
    per_user_limit = fields.Integer()
    per_day_limit = fields.Integer(allow_none=True)
    claim_gate = fields.String()
    status = fields.String()
    issuer_id = fields.Integer()
    budget_id = fields.Integer(allow_none=True)
    group_id = fields.Integer(allow_none=True)
    budget_committed_fen = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class TemplatePageSchema(PageSchema):
    items = fields.List(fields.Nested(TemplateSchema))


class BudgetCreateSchema(Schema):
    host_id = ident(required=True)
    group_id = ident(load_default=None, allow_none=True)
    budget_fen = fen(required=True)
    note = text(255, load_default="")


class BudgetChangeSchema(Schema):
    budget_fen = fen(required=True)


class BudgetSchema(Schema):
    id = fields.Integer()
    host_id = fields.Integer()
    group_id = fields.Integer(allow_none=True)
    budget_fen = fields.Integer()
    committed_fen = fields.Integer()
    left_fen = fields.Method("_left")
    note = fields.String()
    created_by_id = fields.Integer()
    created_at = fields.DateTime()

    def _left(self, budget) -> int:
        return budget.budget_fen - budget.committed_fen


class BudgetPageSchema(PageSchema):
    items = fields.List(fields.Nested(BudgetSchema))


class ClaimSchema(Schema):
    share_code = fields.String(
        load_default=None,
        allow_none=True,
        validate=[validate.Length(min=1, max=16), NO_NUL],
        metadata={"description": "The code of the card the claim came through."},
    )
    group_id = ident(load_default=None, allow_none=True)
    post_id = ident(load_default=None, allow_none=True)


class CardArgsSchema(Schema):
    group_id = ident(strict=False, load_default=None)
    post_id = ident(strict=False, load_default=None)


class MiniProgramLinkSchema(Schema):
    appid = fields.String()
    page = fields.String()


class CardSchema(Schema):
    type = fields.String(metadata={"description": "Always 'coupon'."})
    template_id = fields.Integer()
    share_code = fields.String()
    title = fields.String()
    headline = fields.String()
    description = fields.String()
    kind = fields.String()
    amount_off_fen = fields.Integer()
    threshold_fen = fields.Integer()
    percent_off_bp = fields.Integer()
    cap_fen = fields.Integer()
    claim_starts_at = fields.DateTime()
    claim_ends_at = fields.DateTime()
    valid_until = fields.DateTime(allow_none=True)
    valid_days = fields.Integer(allow_none=True)
    state = fields.String(metadata={"description": "claimable, not_started, out_of_stock, paused or ended."})
    claimable = fields.Boolean()
    stock_left = fields.Integer()
    group_id = fields.Integer(allow_none=True)
    post_id = fields.Integer(allow_none=True)
    miniprogram = fields.Nested(MiniProgramLinkSchema)


class PublicTemplateSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String()
    headline = fields.String()
    kind = fields.String()
    amount_off_fen = fields.Integer()
    threshold_fen = fields.Integer()
    percent_off_bp = fields.Integer()
    cap_fen = fields.Integer()
    scope = fields.String()
    valid_until = fields.DateTime(allow_none=True)
    valid_days = fields.Integer(allow_none=True)
    claim_starts_at = fields.DateTime()
    claim_ends_at = fields.DateTime()
    state = fields.String()
    stock_left = fields.Integer()
    per_user_limit = fields.Integer()


class PublicTemplatePageSchema(PageSchema):
    items = fields.List(fields.Nested(PublicTemplateSchema))


class UserCouponSchema(Schema):
    id = fields.Integer()
    template_id = fields.Integer()
    name = fields.String()
    headline = fields.String()
    kind = fields.String()
    amount_off_fen = fields.Integer()
    threshold_fen = fields.Integer()
    percent_off_bp = fields.Integer()
    cap_fen = fields.Integer()
    scope = fields.String()
    status = fields.String(metadata={"enum": list(COUPON_STATUSES)})
    valid_from = fields.DateTime()
    valid_until = fields.DateTime()
    claimed_at = fields.DateTime()
    used_at = fields.DateTime(allow_none=True)
    reserved_order_id = fields.Integer(allow_none=True)
    origin_share_code = fields.String(allow_none=True)
    origin_group_id = fields.Integer(allow_none=True)
    origin_post_id = fields.Integer(allow_none=True)


class UserCouponPageSchema(PageSchema):
    items = fields.List(fields.Nested(UserCouponSchema))


class MyCouponsArgsSchema(PageArgsSchema):
    status = fields.String(load_default="available", validate=validate.OneOf(("available", "used", "expired")))


class BestArgsSchema(Schema):
    product_id = ident(strict=False, required=True)
    quantity = fields.Integer(load_default=1, validate=validate.Range(min=1, max=999))


class BestCouponSchema(Schema):
    coupon = fields.Nested(UserCouponSchema, allow_none=True)
    subtotal_fen = fields.Integer()
    discount_fen = fields.Integer()
    payable_fen = fields.Integer()


class RefusalListArgsSchema(PageArgsSchema):
    template_id = ident(strict=False, load_default=None)
    user_id = ident(strict=False, load_default=None)


class RefusalSchema(Schema):
    id = fields.String(metadata={"description": "The refused entry's id; resolve it under this id."})
    template_id = fields.Integer()
    user_id = fields.Integer()
    coupon_id = fields.Integer(metadata={"description": "The coupon id the gate told the user (never landed)."})
    grant_id = fields.String()
    reason = fields.String(
        metadata={
            "description": "Why the database refused it: out_of_stock, "
            "template_missing or conflict: <the violated key>."
        }
    )
    granted_at = fields.DateTime(metadata={"description": 'When the user was told "claimed".'})
    refused_at = fields.DateTime()
    origin_share_code = fields.String(allow_none=True)
    origin_group_id = fields.Integer(allow_none=True)
    origin_post_id = fields.Integer(allow_none=True)


class RefusalPageSchema(PageSchema):
    items = fields.List(fields.Nested(RefusalSchema))


class RefusalResolveSchema(Schema):
    action = fields.String(required=True, validate=validate.OneOf(["reissue", "dismiss"]))
    note = text(
        500,
        load_default=None,
        allow_none=True,
        metadata={"description": "Why; required to dismiss (e.g. compensated with another coupon)."},
    )

    @validates_schema
    def _note_to_dismiss(self, data, **kwargs):
        if data["action"] == "dismiss" and not (data.get("note") or "").strip():
            raise ValidationError("Say why the grant is dismissed.", field_name="note")


class RefusalResolutionSchema(Schema):
    id = fields.Integer()
    refusal_entry = fields.String()
    template_id = fields.Integer()
    user_id = fields.Integer()
    granted_coupon_id = fields.Integer()
    granted_at = fields.DateTime()
    refusal_reason = fields.String()
    action = fields.String(metadata={"description": "reissued or dismissed."})
    user_coupon_id = fields.Integer(allow_none=True, metadata={"description": "The re-issued coupon."})
    note = fields.String(allow_none=True)
    resolved_by_id = fields.Integer()
    resolved_at = fields.DateTime()
