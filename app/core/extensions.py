"""Extension objects, created unbound and attached in the app factory."""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api as SmorestApi
from marshmallow import Schema, fields

from app.core.db import render_migration_item
from app.core.errors import http_exception_response


class ErrorEnvelopeSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Stable machine-readable error code."})
    status = fields.Integer(required=True)
    message = fields.String(required=True)
    errors = fields.Raw(metadata={"description": "Per-field details, when there are any."})


class Api(SmorestApi):
    """flask-smorest Api whose HTTP errors use the project's envelope."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def handle_http_exception(self, error):
        return http_exception_response(error)


migrate = Migrate(render_as_batch=True, compare_type=True, render_item=render_migration_item)
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)
