"""Liveness and readiness probes."""

from flask import jsonify
from flask_smorest import Blueprint
from sqlalchemy import text

from app.core import access
from app.core.db import db
from app.core.errors import envelope
from app.core.redis import get_redis

blp = Blueprint("health", __name__, description="Process and dependency probes.")


@blp.route("/healthz", methods=["GET"])
@access.public
def healthz():
    """The process is up (touches nothing else)."""
    return jsonify({"status": "ok"})


@blp.route("/readyz", methods=["GET"])
@access.public
def readyz():
    """The database and Redis both answer; a 503 names the one that failed."""
    failures = {}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means not ready
        db.session.rollback()
        failures["database"] = type(exc).__name__
    try:
        get_redis().ping()
    except Exception as exc:
        failures["redis"] = type(exc).__name__
    if failures:
        return envelope(503, "not_ready", "Not ready: " + ", ".join(sorted(failures)) + " unreachable.", failures)
    return jsonify({"status": "ready", "database": "ok", "redis": "ok"})
