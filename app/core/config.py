"""Configuration, read from the environment when the app factory runs (never at import)."""

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SANDBOX_BASE_URL = "http://wechat.sandbox/"


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def database_uri(url: str | None, instance_path: Path) -> str:
    """Map DATABASE_URL onto a SQLAlchemy URI (psycopg 3 for PostgreSQL), or the embedded SQLite file."""
    if not url:
        return f"sqlite:///{instance_path / 'mamaquan.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_config(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the settings dict from the environment, then apply explicit overrides."""
    env = os.environ if environ is None else environ
    instance_path = Path(env.get("INSTANCE_PATH") or PROJECT_ROOT / "instance")
    deployment = env.get("ENV", "development")
    sandbox = _bool(env.get("WECHAT_SANDBOX"), deployment != "production")
    default_base = SANDBOX_BASE_URL if sandbox else None
    config: dict[str, Any] = {
        "ENV": deployment,
        "INSTANCE_PATH": str(instance_path),
        "SECRET_KEY": env.get("SECRET_KEY")
        or ("" if deployment == "production" else "dev-only-" + secrets.token_hex(8)),
        "SQLALCHEMY_DATABASE_URI": database_uri(env.get("DATABASE_URL"), instance_path),
        # No pre-ping: it costs a round trip per request; a connection broken by a database restart fails one
        # request and SQLAlchemy then replaces the whole pool.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800},
        "REDIS_URL": env.get("REDIS_URL") or None,
        "EMBEDDED_REDIS_FILE": str(instance_path / "redis.db"),
        "MAX_CONTENT_LENGTH": int(env.get("MAX_CONTENT_LENGTH", 1024 * 1024)),
        "SESSION_TTL_SECONDS": int(env.get("SESSION_TTL_SECONDS", 30 * 24 * 3600)),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10/minute"),
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), True),
        "PAGE_SIZE_DEFAULT": 20,
        "PAGE_SIZE_MAX": 100,
        "IDEMPOTENCY_TTL_SECONDS": int(env.get("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)),
        "SCHEDULER_LEADER_TTL_SECONDS": int(env.get("SCHEDULER_LEADER_TTL_SECONDS", 15)),
        "RQ_QUEUES": ["deliveries", "ingest", "payouts", "default"],
        "WECHAT_SANDBOX": sandbox,
        "WECHAT_APPID": env.get("WECHAT_APPID", "wxsandboxappid0001"),
        "WECHAT_SECRET": env.get("WECHAT_SECRET", "sandbox-secret"),
        "WECHAT_API_BASE": env.get("WECHAT_API_BASE") or default_base or "https://api.weixin.qq.com/",
        "WECOM_CORP_ID": env.get("WECOM_CORP_ID", "wwsandboxcorp0001"),
        "WECOM_SECRET": env.get("WECOM_SECRET", "sandbox-wecom-secret"),
        "WECOM_API_BASE": env.get("WECOM_API_BASE")
        or (default_base and default_base + "cgi-bin/")
        or "https://qyapi.weixin.qq.com/cgi-bin/",
        "WECHAT_PAY_MCH_ID": env.get("WECHAT_PAY_MCH_ID", "1900000001"),
        # Signs our calls and verifies WeChat Pay's notifications: a known default would let anyone forge one.
        "WECHAT_PAY_API_KEY": env.get("WECHAT_PAY_API_KEY")
        or ("" if deployment == "production" else "sandbox-pay-api-key-32-characters!"),
        # The merchant API certificate and key (PEM files): WeChat Pay refuses refunds and transfers without them.
        "WECHAT_PAY_CERT_FILE": env.get("WECHAT_PAY_CERT_FILE") or None,
        "WECHAT_PAY_KEY_FILE": env.get("WECHAT_PAY_KEY_FILE") or None,
        "WECHAT_PAY_API_BASE": env.get("WECHAT_PAY_API_BASE") or default_base or "https://api.mch.weixin.qq.com/",
        "WECHAT_TIMEOUT_SECONDS": float(env.get("WECHAT_TIMEOUT_SECONDS", 5)),
        # Where WeChat Pay reports finished refunds (default: this host's /api/v1/webhooks/wechatpay/refund).
        "WECHAT_PAY_REFUND_NOTIFY_URL": env.get("WECHAT_PAY_REFUND_NOTIFY_URL") or None,
        # The sandbox finishes a refund this long after it was asked (0: only when told to, as tests do).
        "WECHAT_SANDBOX_REFUND_SECONDS": float(env.get("WECHAT_SANDBOX_REFUND_SECONDS", 10)),
        "MINIPROGRAM_HOME_PAGE": env.get("MINIPROGRAM_HOME_PAGE", "pages/index/index"),
        # Encrypts secrets at rest (group credentials); stable across processes, so never a random default.
        "DATA_ENCRYPTION_KEY": env.get("DATA_ENCRYPTION_KEY")
        or ("" if deployment == "production" else "dev-only-data-key"),
        "DELIVERY_MISFIRE_GRACE_SECONDS": int(env.get("DELIVERY_MISFIRE_GRACE_SECONDS", 600)),
        "DELIVERY_SENDING_TIMEOUT_SECONDS": int(env.get("DELIVERY_SENDING_TIMEOUT_SECONDS", 120)),
        "DELIVERY_REQUEUE_AFTER_SECONDS": int(env.get("DELIVERY_REQUEUE_AFTER_SECONDS", 120)),
        "DELIVERY_SEND_CONCURRENCY": int(env.get("DELIVERY_SEND_CONCURRENCY", 32)),
        "WECOM_WEBHOOK_URL": env.get("WECOM_WEBHOOK_URL")
        or (default_base and default_base + "cgi-bin/webhook/send")
        or "https://qyapi.weixin.qq.com/cgi-bin/webhook/send",
        # Content: rich-text size limit, bulk upload size, the sandbox's risky words, reports that hide a post.
        "CONTENT_BODY_MAX_CHARS": int(env.get("CONTENT_BODY_MAX_CHARS", 20000)),
        "CONTENT_POST_MAX_CHARS": int(env.get("CONTENT_POST_MAX_CHARS", 5000)),
        "CONTENT_BULK_MAX_ROWS": int(env.get("CONTENT_BULK_MAX_ROWS", 2000)),
        "CONTENT_RISKY_WORDS": [
            w for w in env.get("CONTENT_RISKY_WORDS", "赌博,代开发票,枪支").split(",") if w.strip()
        ],
        "CONTENT_REPORTS_TO_HIDE": int(env.get("CONTENT_REPORTS_TO_HIDE", 3)),
        # Changes to posts refresh the feeds they touch at once; the cache time bounds only view counts,
        # popular order and card prices.
        "CONTENT_FEED_CACHE_SECONDS": int(env.get("CONTENT_FEED_CACHE_SECONDS", 30)),
        # Search pages are cached until a product changes (create, edit, import); the time bounds the memory.
        "CATALOG_SEARCH_CACHE_SECONDS": int(env.get("CATALOG_SEARCH_CACHE_SECONDS", 30)),
        # Redirects to a link this process knows queue their click and count it in Redis a moment later
        # (every 50 ms: each send costs the worker a thread switch and a round trip, whatever it carries).
        "CLICK_WRITE_BEHIND": _bool(env.get("CLICK_WRITE_BEHIND"), True),
        "CLICK_WRITE_BEHIND_LINGER_SECONDS": float(env.get("CLICK_WRITE_BEHIND_LINGER_SECONDS", 0.05)),
        "CONTENT_LICENSE_VERSION": env.get("CONTENT_LICENSE_VERSION", "2026-01"),
        # A flash claim is answered from Redis and lands in the database a moment later: `verify` refuses
        # to answer one unless Redis fsyncs every write first (AOF with appendfsync always).
        "COUPON_GATE_DURABILITY": env.get("COUPON_GATE_DURABILITY")
        or ("verify" if deployment == "production" else "off"),
        # Per-day claim limits count calendar days in this zone (IANA name).
        "COUPON_DAY_TIMEZONE": env.get("COUPON_DAY_TIMEZONE", "Asia/Shanghai"),
        # Flash claims on gated templates are answered before Flask's request cycle (app/coupons/lane.py).
        "COUPON_CLAIM_LANE": _bool(env.get("COUPON_CLAIM_LANE"), True),
        "API_TITLE": "Mamaquan API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": "/api/docs/assets/",
    }
    if overrides:
        config.update(overrides)
    return config


def check_production_safety(config: Mapping[str, Any]) -> None:
    """Refuse to start a production app with development conveniences switched on."""
    if config["COUPON_GATE_DURABILITY"] not in ("verify", "off"):
        raise RuntimeError("COUPON_GATE_DURABILITY must be 'verify' or 'off'")
    try:
        ZoneInfo(config["COUPON_DAY_TIMEZONE"])
    except (ValueError, ZoneInfoNotFoundError):
        raise RuntimeError(f"COUPON_DAY_TIMEZONE {config['COUPON_DAY_TIMEZONE']!r} is not a known time zone") from None
    if config["ENV"] != "production":
        return
    if config["WECHAT_SANDBOX"]:
        raise RuntimeError("the WeChat sandbox is refused when ENV=production")
    if not config["SECRET_KEY"]:
        raise RuntimeError("SECRET_KEY must be set when ENV=production")
    if not config["DATA_ENCRYPTION_KEY"]:
        raise RuntimeError("DATA_ENCRYPTION_KEY must be set when ENV=production")
    for name in ("WECHAT_PAY_API_KEY", "WECHAT_PAY_CERT_FILE", "WECHAT_PAY_KEY_FILE"):
        if not config[name]:
            raise RuntimeError(f"{name} must be set when ENV=production")
