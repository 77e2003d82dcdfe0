from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.core.pagination import PageArgsSchema, PageSchema
from app.coupons.schemas import ident, text


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
