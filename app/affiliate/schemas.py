from marshmallow import Schema, fields, validate

from app.affiliate.models import RULE_KINDS

BP = validate.Range(min=0, max=10000)
ID = validate.Range(min=1, max=2**53)


class RuleCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(RULE_KINDS))
    name = fields.String(load_default="", validate=validate.Length(max=128))
    category_id = fields.Integer(load_default=None, allow_none=True, validate=ID)
    product_id = fields.Integer(load_default=None, allow_none=True, validate=ID)
    level1_bp = fields.Integer(required=True, strict=True, validate=BP)
    level2_bp = fields.Integer(required=True, strict=True, validate=BP)
    host_bp = fields.Integer(required=True, strict=True, validate=BP)
    content_bp = fields.Integer(required=True, strict=True, validate=BP)
    starts_at = fields.AwareDateTime(load_default=None, allow_none=True)
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True)


class RuleSchema(RuleCreateSchema):
    id = fields.Integer()
    created_at = fields.DateTime()
    created_by_id = fields.Integer(allow_none=True)


class RuleListArgsSchema(Schema):
    at = fields.AwareDateTime(load_default=None, metadata={"description": "Only rules in force at this time."})


class RuleListSchema(Schema):
    items = fields.List(fields.Nested(RuleSchema))


class RuleEndSchema(Schema):
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True)


class SettingsSchema(Schema):
    level2_enabled = fields.Boolean(required=True)


class ShareLinkCreateSchema(Schema):
    product_id = fields.Integer(required=True, strict=True, validate=ID)
    group_id = fields.Integer(load_default=None, allow_none=True, validate=ID)
    post_id = fields.Integer(load_default=None, allow_none=True, validate=ID)
    content_id = fields.Integer(load_default=None, allow_none=True, validate=ID)


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


class ClickSchema(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=16))


class ClickResultSchema(Schema):
    counted = fields.Boolean(metadata={"description": "False when the same user clicked this code within a minute."})
