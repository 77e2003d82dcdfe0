"""Extension objects, created unbound and attached in the app factory."""

import flask_limiter
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
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


def schema_component_name(schema) -> str:
    """Name OpenAPI components after their domain too, so two domains' `PostSchema`s never collide."""
    cls = resolve_schema_cls(schema)
    name = cls.__name__.removesuffix("Schema") or cls.__name__
    parts = cls.__module__.split(".")
    if len(parts) > 2 and parts[0] == "app" and parts[1] != "core":
        return parts[1].capitalize() + name
    return name


class Api(SmorestApi):
    """flask-smorest Api whose HTTP errors use the project's envelope and whose schema names are unique."""

    ERROR_SCHEMA = ErrorEnvelopeSchema

    def __init__(self, app=None, **kwargs):
        kwargs.setdefault("spec_kwargs", {})["marshmallow_plugin"] = MarshmallowPlugin(
            schema_name_resolver=schema_component_name
        )
        super().__init__(app, **kwargs)

    def handle_http_exception(self, error):
        return http_exception_response(error)


class Limiter(flask_limiter.Limiter):
    """Flask-Limiter that skips its before-request pass while no limit could apply to every request.

    The stock hook resolves default, application, blueprint and meta limits for every request, even
    when none are configured. Decorated limits (login's) are checked by their decorator regardless, so
    the pass only matters once one of the request-wide kinds exists; then it runs as before.
    """

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if in_middleware and not self._request_wide_limits():
            return
        super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)

    def _request_wide_limits(self) -> bool:
        manager = self.limit_manager
        return bool(
            manager._default_limits
            or manager._application_limits
            or manager._blueprint_limits
            or manager._endpoint_hints
            or self._meta_limits
        )


migrate = Migrate(render_as_batch=True, compare_type=True, render_item=render_migration_item)
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True)
