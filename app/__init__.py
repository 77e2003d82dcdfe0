"""Mamaquan: the backend of a mini-program for social commerce in moms' chat groups."""

import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from flask import Flask, request
from flask.sessions import SessionInterface
from flask_smorest import Blueprint as SmorestBlueprint
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app.accounts import service as accounts_service
from app.core import access
from app.core import redis as redis_store
from app.core.config import check_production_safety, load_config
from app.core.db import db
from app.core.errors import ApiError, register_error_handlers
from app.core.extensions import Api, limiter, migrate
from app.core.http import BoundedIntConverter, is_json_body, refuse_unreadable_json, views_as_use_cases

CORE_PACKAGE = "core"
LIBRARY_PUBLIC_ENDPOINTS = ["static", "api-docs.openapi_json", "api-docs.openapi_swagger_ui", "swagger_assets"]
BODY_METHODS = {"POST", "PUT", "PATCH"}


def domain_modules(name: str) -> list[ModuleType]:
    """Import `app.<domain>.<name>` for every domain package that has one (the core first)."""
    found = []
    packages = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)
    packages.sort(key=lambda p: p != CORE_PACKAGE)
    for package in packages:
        if importlib.util.find_spec(f"app.{package}.{name}") is not None:
            found.append(importlib.import_module(f"app.{package}.{name}"))
    return found


def create_app(config: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Flask:
    """Build the app: settings from `environ` (default: the process's) plus `config` overrides, stores, domains."""
    settings = load_config(environ, overrides=config)
    check_production_safety(settings)
    app = Flask(__name__, instance_path=settings["INSTANCE_PATH"], static_folder=None)
    app.config.update(settings)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.json.sort_keys = False
    app.session_interface = NoCookieSession()

    app.url_map.converters["int"] = BoundedIntConverter
    redis_store.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_store.limiter_storage_uri(app.config["REDIS_URL"]))
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "mmq-limits")

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"))
    limiter.init_app(app)
    api = Api(app)
    register_error_handlers(app)
    access.init_app(app, authenticate=accounts_service.authenticate)

    domain_modules("models")  # importing registers every table with the metadata
    from app.core.health import blp as health_blp

    api.register_blueprint(health_blp)
    for module in domain_modules("api"):
        for blueprint in getattr(module, "blueprints", []):
            if isinstance(blueprint, SmorestBlueprint):
                api.register_blueprint(blueprint)
            else:
                app.register_blueprint(blueprint)
    from app.core.commands import scheduler_cli, worker_cli

    for group in [scheduler_cli, worker_cli] + [m.cli for m in domain_modules("cli") if hasattr(m, "cli")]:
        app.cli.add_command(group)
    app.extensions["scheduled_jobs"] = [job for m in domain_modules("tasks") for job in getattr(m, "SCHEDULE", [])]
    domain_modules("sandbox")  # domains that extend the WeChat sandbox register their endpoints

    from app.wechat import clients as wechat_clients

    wechat_clients.init_app(app)
    _register_docs_assets(app)
    access.declare_public_endpoints(app, LIBRARY_PUBLIC_ENDPOINTS)
    views_as_use_cases(app)
    _require_json_bodies(app)
    if app.config["WECHAT_SANDBOX"]:
        from app.wechat.sandbox import create_sandbox_app

        sandbox = app.extensions.setdefault("wechat_sandbox", create_sandbox_app(app))
        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/wechat-sandbox": sandbox})
    from app.coupons.flash.lane import ClaimLane

    app.wsgi_app = ClaimLane(app, app.wsgi_app)
    return app


class NoCookieSession(SessionInterface):
    """Callers authenticate with bearer tokens and nothing uses `flask.session`, so no request pays
    for signing machinery to read a session cookie that never exists (writing to it raises)."""

    def open_session(self, app: Flask, request) -> None:
        return None

    def save_session(self, app: Flask, session, response) -> None:
        return None


def _register_docs_assets(app: Flask) -> None:
    """Serve the Swagger UI files from the installed package, so /api/docs works offline."""
    from flask import send_from_directory

    def swagger_assets(filename: str):
        return send_from_directory(str(swagger_ui_path), filename)

    app.add_url_rule("/api/docs/assets/<path:filename>", "swagger_assets", swagger_assets)


def _require_json_bodies(app: Flask) -> None:
    """The API speaks JSON only: a body of another type is refused with 415.

    A JSON body is checked here once for what no schema field sees whole (nesting past any parser's
    recursion limit, text no store can encode), so every route refuses it alike; views that read their
    own raw bodies (signed webhooks) check what they parse themselves.
    """

    @app.before_request
    def _json_only():
        if request.method not in BODY_METHODS or not request.content_length:
            return
        view = app.view_functions.get(request.endpoint) if request.endpoint else None
        if getattr(view, "_raw_body", False):
            return
        if not is_json_body(request.environ):
            raise ApiError("Send the body as application/json.", status=415, code="unsupported_media_type")
        refuse_unreadable_json(request.get_data(cache=True))
