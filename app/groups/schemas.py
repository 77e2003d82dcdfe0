from marshmallow import Schema, fields, validate

from app.core.clock import DEFAULT_ZONE_NAME
from app.core.pagination import PageArgsSchema, PageSchema
from app.groups.models import AGE_BANDS, CHANNELS, FAN_LEVELS, INSTITUTION_KINDS

Tag = fields.String(validate=validate.Length(min=1, max=32))
Id = lambda **kw: fields.Integer(validate=validate.Range(min=1, max=2**53), **kw)  # noqa: E731


class InstitutionInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    kind = fields.String(required=True, validate=validate.OneOf(INSTITUTION_KINDS))
    city = fields.String(load_default="", validate=validate.Length(max=64))


class InstitutionPatchSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=128))
    kind = fields.String(validate=validate.OneOf(INSTITUTION_KINDS))
    city = fields.String(validate=validate.Length(max=64))


class InstitutionSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    city = fields.String()
    owner_id = fields.Integer()
    created_at = fields.DateTime()


class InstitutionPageSchema(PageSchema):
    items = fields.List(fields.Nested(InstitutionSchema))


class ClassInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    age_band = fields.String(required=True, validate=validate.OneOf(AGE_BANDS))


class ClassSchema(Schema):
    id = fields.Integer()
    institution_id = fields.Integer()
    name = fields.String()
    age_band = fields.String()
    created_at = fields.DateTime()


class ClassListSchema(Schema):
    items = fields.List(fields.Nested(ClassSchema))


class CredentialsSchema(Schema):
    """Secrets of the group's channel: accepted on write, never returned."""

    webhook_key = fields.String(
        validate=validate.Length(min=8, max=128), metadata={"description": "wecom_webhook: the robot's webhook key."}
    )
    corp_id = fields.String(validate=validate.Length(min=1, max=64), metadata={"description": "wecom_customer_group."})
    sender = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "wecom_customer_group: the host's WeCom userid."},
    )
    chat_id = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "wecom_customer_group: the customer group's chat id."},
    )


class GroupInSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    credentials = fields.Nested(CredentialsSchema, load_default=None)
    age_band = fields.String(required=True, validate=validate.OneOf(AGE_BANDS))
    tags = fields.List(Tag, load_default=list, validate=validate.Length(max=20))
    timezone = fields.String(load_default=DEFAULT_ZONE_NAME, validate=validate.Length(min=1, max=64))
    institution_id = Id(load_default=None, allow_none=True)
    class_id = Id(load_default=None, allow_none=True)
    host_id = Id(load_default=None, allow_none=True, metadata={"description": "Operators only: the group's host."})


class GroupPatchSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=64))
    channel = fields.String(validate=validate.OneOf(CHANNELS))
    credentials = fields.Nested(CredentialsSchema)
    age_band = fields.String(validate=validate.OneOf(AGE_BANDS))
    tags = fields.List(Tag, validate=validate.Length(max=20))
    timezone = fields.String(validate=validate.Length(min=1, max=64))
    institution_id = Id(allow_none=True)
    class_id = Id(allow_none=True)
    is_active = fields.Boolean()


class GroupSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    host_id = fields.Integer()
    institution_id = fields.Integer(allow_none=True)
    class_id = fields.Integer(allow_none=True)
    channel = fields.String()
    credentials_set = fields.Method(
        "_credentials_set", metadata={"description": "Credentials are stored (never shown)."}
    )
    age_band = fields.String()
    tags = fields.List(fields.String())
    timezone = fields.String()
    member_count = fields.Integer()
    is_active = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()

    def _credentials_set(self, group) -> bool:
        return bool(group.credentials_encrypted)


class GroupPageSchema(PageSchema):
    items = fields.List(fields.Nested(GroupSchema))


class GroupListArgsSchema(PageArgsSchema):
    institution_id = Id(load_default=None)
    channel = fields.String(load_default=None, validate=validate.OneOf(CHANNELS))


class GroupInviteSchema(Schema):
    group_id = fields.Integer()
    scene = fields.String()
    page = fields.String()
    image = fields.String(metadata={"description": "The mini-program code as a PNG data URL."})


class JoinSchema(Schema):
    scene = fields.String(required=True, validate=validate.Length(min=1, max=32))


class MembershipSchema(Schema):
    group_id = fields.Integer()
    group_name = fields.String()
    joined_at = fields.DateTime()
    fan_level = fields.String()


class MembershipListSchema(Schema):
    items = fields.List(fields.Nested(MembershipSchema))


class MemberSchema(Schema):
    user_id = fields.Integer()
    nickname = fields.String()
    joined_at = fields.DateTime()
    fan_level = fields.String()
    fan_level_at = fields.DateTime()
    roles = fields.List(fields.String())


class MemberPageSchema(PageSchema):
    items = fields.List(fields.Nested(MemberSchema))


class MemberListArgsSchema(PageArgsSchema):
    level = fields.String(load_default=None, validate=validate.OneOf(FAN_LEVELS))


class RolesSchema(Schema):
    group_id = fields.Integer()
    user_id = fields.Integer()
    roles = fields.List(fields.String())


class FanCountsSchema(Schema):
    group_id = fields.Integer()
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "Members per fan level: casual, active, demand, trust."},
    )


class DemandInSchema(Schema):
    text = fields.String(required=True, validate=validate.Length(min=1, max=500))


class DemandSchema(Schema):
    id = fields.Integer()
    group_id = fields.Integer()
    user_id = fields.Integer()
    text = fields.String(attribute="detail")
    occurred_at = fields.DateTime()
