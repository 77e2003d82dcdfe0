from marshmallow import Schema, fields, validate

from app.accounts.service import roles_of
from app.core.pagination import PageArgsSchema, PageSchema


class LoginSchema(Schema):
    code = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata={"description": "The code from wx.login(). Sandbox: 'sandbox:<name>'."},
    )
    invite_code = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=16))


class UserSchema(Schema):
    id = fields.Integer()
    nickname = fields.String()
    invite_code = fields.String()
    roles = fields.Method("_roles")
    inviter_id = fields.Integer(allow_none=True)
    bound_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()

    def _roles(self, user) -> list[str]:
        return sorted(roles_of(user))


class ReferralSchema(Schema):
    status = fields.String(metadata={"description": "none, bound, already_bound, unknown_code, self_invite or cycle."})
    inviter_id = fields.Integer(allow_none=True)


class LoginResponseSchema(Schema):
    token = fields.String()
    token_type = fields.String()
    expires_at = fields.DateTime()
    created = fields.Boolean(metadata={"description": "True on the user's first login."})
    user = fields.Nested(UserSchema)
    referral = fields.Nested(ReferralSchema)


class UpdateMeSchema(Schema):
    nickname = fields.String(required=True, validate=validate.Length(min=1, max=64))


class InviteSchema(Schema):
    invite_code = fields.String()
    scene = fields.String()
    page = fields.String()
    image = fields.String(metadata={"description": "The mini-program code as a PNG data URL."})


class TeamArgsSchema(PageArgsSchema):
    level = fields.Integer(load_default=1, validate=validate.OneOf([1, 2]))


class TeamMemberSchema(Schema):
    id = fields.Integer()
    nickname = fields.String()
    level = fields.Integer()
    inviter_id = fields.Integer()
    bound_at = fields.DateTime()


class TeamCountsSchema(Schema):
    level_1 = fields.Integer()
    level_2 = fields.Integer()


class TeamPageSchema(PageSchema):
    counts = fields.Nested(TeamCountsSchema)
    items = fields.List(fields.Nested(TeamMemberSchema))


class RoleChangeResponseSchema(Schema):
    user = fields.Nested(UserSchema)
