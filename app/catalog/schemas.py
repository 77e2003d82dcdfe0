from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.catalog.models import PRODUCT_SOURCES
from app.core.http import STORABLE
from app.core.pagination import PageArgsSchema, PageSchema

SORTS = ("newest", "price_asc", "price_desc", "commission")
URL = validate.Length(max=1024)


class CategorySchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=[validate.Length(min=1, max=64), STORABLE])
    parent_id = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=2**53))


class CategoryListSchema(Schema):
    items = fields.List(fields.Nested(CategorySchema))


class ProductWriteSchema(Schema):
    """What an operator (or a feed row) sets on a product."""

    title = fields.String(required=True, validate=[validate.Length(min=1, max=255), STORABLE])
    description = fields.String(load_default="", validate=[validate.Length(max=20000), STORABLE])
    images = fields.List(
        fields.String(validate=[validate.Length(min=1, max=1024), STORABLE]),
        load_default=list,
        validate=validate.Length(max=20),
    )
    price_fen = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10**11))
    commission_rate_bp = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10000))
    merchant = fields.String(load_default="", validate=[validate.Length(max=128), STORABLE])
    category_id = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=2**53))
    link_url = fields.String(load_default=None, allow_none=True, validate=[URL, STORABLE])
    miniprogram_path = fields.String(load_default=None, allow_none=True, validate=[validate.Length(max=512), STORABLE])
    union_coupon_url = fields.String(load_default=None, allow_none=True, validate=[URL, STORABLE])
    is_breastmilk_substitute = fields.Boolean(load_default=False)
    is_active = fields.Boolean(load_default=True)


class ProductCreateSchema(ProductWriteSchema):
    source = fields.String(load_default="own", validate=validate.OneOf(PRODUCT_SOURCES))
    external_id = fields.String(required=True, validate=[validate.Length(min=1, max=128), STORABLE])


class ProductPatchSchema(ProductWriteSchema):
    """Loaded with partial=True: only the fields sent change."""

    title = fields.String(validate=[validate.Length(min=1, max=255), STORABLE])
    price_fen = fields.Integer(strict=True, validate=validate.Range(min=0, max=10**11))
    commission_rate_bp = fields.Integer(strict=True, validate=validate.Range(min=0, max=10000))

    @validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Send at least one field to change.")


class FeedRowSchema(ProductWriteSchema):
    """One row of a union feed file: the category is given by name."""

    external_id = fields.String(required=True, validate=[validate.Length(min=1, max=128), STORABLE])
    category = fields.String(load_default=None, allow_none=True, validate=[validate.Length(min=1, max=64), STORABLE])


class ProductSchema(Schema):
    id = fields.Integer()
    source = fields.String()
    external_id = fields.String()
    title = fields.String()
    description = fields.String()
    images = fields.List(fields.String())
    price_fen = fields.Integer()
    commission_rate_bp = fields.Integer()
    merchant = fields.String()
    category_id = fields.Integer(allow_none=True)
    link_url = fields.String(allow_none=True)
    miniprogram_path = fields.String(allow_none=True)
    union_coupon_url = fields.String(allow_none=True)
    is_breastmilk_substitute = fields.Boolean()
    is_active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ProductSearchArgsSchema(PageArgsSchema):
    q = fields.String(load_default=None, validate=[validate.Length(min=1, max=64), STORABLE])
    category_id = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**53))
    sort = fields.String(load_default="newest", validate=validate.OneOf(SORTS))


class ProductPageSchema(PageSchema):
    items = fields.List(fields.Nested(ProductSchema))
