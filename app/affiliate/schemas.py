from marshmallow import Schema, fields, validate

from app.affiliate.models import RULE_KINDS
from app.catalog import service as catalog
from app.core.clock import EARLIEST, LATEST
from app.core.http import STORABLE

BP = validate.Range(min=0, max=10000)
ID = validate.Range(min=1, max=2**53)

# Beyond these, converting to UTC overflows (a 500); no real order, rule or withdrawal is timed there.
MOMENT = validate.Range(min=EARLIEST, max=LATEST)


class RuleCreateSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(RULE_KINDS))
    name = fields.String(load_default="", validate=[validate.Length(max=128), STORABLE])
    category_id = fields.Integer(load_default=None, allow_none=True, validate=ID)
    product_id = fields.Integer(load_default=None, allow_none=True, validate=ID)
    level1_bp = fields.Integer(required=True, strict=True, validate=BP)
    level2_bp = fields.Integer(required=True, strict=True, validate=BP)
    host_bp = fields.Integer(required=True, strict=True, validate=BP)
    content_bp = fields.Integer(required=True, strict=True, validate=BP)
    starts_at = fields.AwareDateTime(load_default=None, allow_none=True, validate=MOMENT)
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True, validate=MOMENT)


class RuleSchema(RuleCreateSchema):
    id = fields.Integer()
    created_at = fields.DateTime()
    created_by_id = fields.Integer(allow_none=True)


class RuleListArgsSchema(Schema):
    at = fields.AwareDateTime(
        load_default=None, validate=MOMENT, metadata={"description": "Only rules in force at this time."}
    )


class RuleListSchema(Schema):
    items = fields.List(fields.Nested(RuleSchema))


class RuleEndSchema(Schema):
    ends_at = fields.AwareDateTime(load_default=None, allow_none=True, validate=MOMENT)


class SettingsSchema(Schema):
    level2_enabled = fields.Boolean(required=True)


class ClickSchema(Schema):
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9]{1,16}$"))


class ClickResultSchema(Schema):
    counted = fields.Boolean(metadata={"description": "False when the same user clicked this code within a minute."})


class BalancesSchema(Schema):
    pending = fields.Integer()
    available = fields.Integer()
    withdrawing = fields.Integer()
    withdrawn = fields.Integer()


class SharesSchema(Schema):
    level1 = fields.Integer()
    level2 = fields.Integer()
    host = fields.Integer()
    content = fields.Integer()
    adjustment = fields.Integer()


class EarningsSchema(Schema):
    balances = fields.Nested(BalancesSchema)
    by_share = fields.Nested(SharesSchema, metadata={"description": "Net of refunds, settled or not."})


class EarningSchema(Schema):
    level1_fen = fields.Integer(metadata={"description": "What the logged-in sharer earns on one unit at list price."})
    level1_bp = fields.Integer()
    rule_id = fields.Integer(allow_none=True)


class ProductDetailSchema(catalog.ProductSchema):
    my_earning = fields.Nested(
        EarningSchema, allow_none=True, metadata={"description": "Present when a user is logged in."}
    )
