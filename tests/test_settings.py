"""Every setting is read and checked at start, listed in README, and production refuses development conveniences."""

import os
import re
import secrets
from pathlib import Path

import pytest

from app import create_app
from app.core.config import (
    KEY_SETTINGS,
    PROJECT_ROOT,
    SANDBOX_CREDENTIALS,
    SETTINGS,
    ConfigError,
    check_production_safety,
    load_config,
    text,
    words,
)
from tools.settings_table import README, readme_table, settings_table

# A value each setting refuses; settings that take any text (names, secrets, paths) have none.
BAD_VALUES = {
    "ENV": "Production",
    "DATABASE_URL": "mysql://db/mamaquan",
    "REDIS_URL": "localhost:6379",
    "MAX_CONTENT_LENGTH": "1MB",
    "SESSION_TTL_SECONDS": "30",
    "LOGIN_RATE_LIMIT": "ten a minute",
    "RATELIMIT_ENABLED": "maybe",
    "IDEMPOTENCY_TTL_SECONDS": "-1",
    "SCHEDULER_LEADER_TTL_SECONDS": "1",
    "RQ_ASYNC": "sometimes",
    "WECHAT_SANDBOX": "onn",
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "WECOM_API_BASE": "ftp://qyapi.weixin.qq.com/cgi-bin/",
    "WECOM_WEBHOOK_URL": "qyapi.weixin.qq.com/cgi-bin/webhook/send",
    "WECHAT_PAY_API_BASE": "api.mch.weixin.qq.com/",
    "WECHAT_PAY_NOTIFY_URL": "webhooks.example.com/api/v1/webhooks/wechatpay",
    "WECHAT_PAY_REFUND_NOTIFY_URL": "/api/v1/webhooks/wechatpay/refund",
    "WECHAT_TIMEOUT_SECONDS": "0",
    "WECHAT_SANDBOX_REFUND_SECONDS": "-5",
    "MINIPROGRAM_HOME_PAGE": "/pages/index/index",
    "SHARE_PAGE": "pages/product/index?code=x",
    "SHARE_LANDING_URL": "/api/v1/products/",
    "ATTRIBUTION_WINDOW_DAYS": "0",
    "LEVEL2_ENABLED_DEFAULT": "2",
    "CHECKOUT_PAYMENT_MINUTES": "0",
    "CHECKOUT_COMPLETE_DAYS": "-1",
    "HOLDING_DAYS": "7.5",
    "WITHDRAWAL_DAILY_CAP_FEN": "0",
    "PAYOUT_CLIENT_IP": "localhost",
    "DELIVERY_MISFIRE_GRACE_SECONDS": "0",
    "DELIVERY_SENDING_TIMEOUT_SECONDS": "two minutes",
    "DELIVERY_REQUEUE_AFTER_SECONDS": "0",
    "DELIVERY_SEND_CONCURRENCY": "1000",
    "CONTENT_BODY_MAX_CHARS": "0",
    "CONTENT_POST_MAX_CHARS": "-1",
    "CONTENT_BULK_MAX_ROWS": "lots",
    "CONTENT_REPORTS_TO_HIDE": "0",
    "CONTENT_FEED_CACHE_SECONDS": "-1",
    "CATALOG_SEARCH_CACHE_SECONDS": "1e3",
    "CLICK_WRITE_BEHIND": "yes please",
    "CLICK_WRITE_BEHIND_LINGER_SECONDS": "nan",
    "COUPON_GATE_DURABILITY": "always",
    "COUPON_DAY_TIMEZONE": "Mars/Olympus_Mons",
    "COUPON_CLAIM_LANE": "enabled",
    "COUPON_DRAIN_LOCK_SECONDS": "0",
}
FREE_TEXT = (text, words)


def test_readme_lists_every_setting_and_nothing_else():
    readme = readme_table(README.read_text())
    listed = re.findall(r"^\| `([A-Z0-9_]+)` \|", readme, flags=re.MULTILINE)
    assert listed == [s.name for s in SETTINGS]
    assert readme == settings_table(), "README is out of date: run `python -m tools.settings_table --write`"


def test_every_checked_setting_has_a_bad_value_here():
    checked = {s.name for s in SETTINGS if s.parse not in FREE_TEXT}
    assert checked == set(BAD_VALUES)


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_a_bad_value_refuses_to_start_naming_the_setting_and_the_value(name):
    with pytest.raises(ConfigError) as refused:
        create_app(environ={name: BAD_VALUES[name]})
    assert f"{name}={BAD_VALUES[name]!r}" in str(refused.value)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as refused:
        load_config({"HOLDING_DAYS": "-1", "ENV": "prod", "RQ_ASYNC": "perhaps"})
    assert [p.split("=")[0] for p in refused.value.problems] == ["ENV", "RQ_ASYNC", "HOLDING_DAYS"]


def test_values_are_read_as_their_types():
    config = load_config(
        {
            "HOLDING_DAYS": "0",
            "CHECKOUT_COMPLETE_DAYS": " 0 ",
            "RQ_ASYNC": "Off",
            "CLICK_WRITE_BEHIND": "yes",
            "WECHAT_TIMEOUT_SECONDS": "2.5",
            "CONTENT_RISKY_WORDS": "a, b,,c",
            "DATABASE_URL": "postgres://u@h/db",
            "PAYOUT_CLIENT_IP": "10.0.0.7",
        }
    )
    assert config["HOLDING_DAYS"] == 0 and config["CHECKOUT_COMPLETE_DAYS"] == 0  # a demo settles its own orders
    assert config["RQ_ASYNC"] is False and config["CLICK_WRITE_BEHIND"] is True
    assert config["WECHAT_TIMEOUT_SECONDS"] == 2.5
    assert config["CONTENT_RISKY_WORDS"] == ["a", "b", "c"]
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    assert config["PAYOUT_CLIENT_IP"] == "10.0.0.7"


def test_an_empty_variable_is_the_default():
    config = load_config({"HOLDING_DAYS": "", "ENV": " "})
    assert config["HOLDING_DAYS"] == 7 and config["ENV"] == "development"


@pytest.fixture
def production(tmp_path, stores) -> dict[str, str]:
    """An environment production starts with: real-looking credentials, keys nobody has seen, the merchant files."""
    cert, key = tmp_path / "apiclient_cert.pem", tmp_path / "apiclient_key.pem"
    cert.write_text("certificate")
    key.write_text("key")
    return {
        "ENV": "production",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.db'}",
        "REDIS_URL": stores["redis_url"],
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATA_ENCRYPTION_KEY": secrets.token_urlsafe(32),
        "WECHAT_PAY_API_KEY": secrets.token_hex(16),
        "WECHAT_APPID": "wx1234567890abcdef",
        "WECHAT_SECRET": secrets.token_hex(16),
        "WECOM_CORP_ID": "ww1234567890abcdef",
        "WECOM_SECRET": secrets.token_urlsafe(32),
        "WECHAT_PAY_MCH_ID": "1612345678",
        "WECHAT_PAY_CERT_FILE": str(cert),
        "WECHAT_PAY_KEY_FILE": str(key),
    }


def test_production_starts_with_real_settings(production):
    app = create_app(environ=production)
    assert app.config["ENV"] == "production" and app.config["WECHAT_SANDBOX"] is False
    assert app.config["WECHAT_PAY_API_BASE"] == "https://api.mch.weixin.qq.com/"
    assert app.config["COUPON_GATE_DURABILITY"] == "verify"


def _refusal(environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as refused:
        create_app(environ=environ)
    return str(refused.value)


@pytest.mark.parametrize("spelling", ["Production", "PRODUCTION", "prod", "staging", "test"])
def test_env_takes_only_its_known_spellings(production, spelling):
    message = _refusal(production | {"ENV": spelling})
    assert "ENV=" in message and "must be one of development, production" in message


def test_env_given_in_code_is_checked_too():
    with pytest.raises(ConfigError, match="ENV='prod'"):
        check_production_safety(load_config({}, overrides={"ENV": "prod"}))


SANDBOX_OR_PLAIN = ["http://wechat.sandbox/", "http://127.0.0.1:8000/wechat-sandbox/", "http://api.weixin.qq.com/"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WECHAT_SANDBOX", "on"),
        ("SECRET_KEY", ""),
        ("SECRET_KEY", "x"),
        ("SECRET_KEY", "a-31-byte-secret-key-for-tests!"),
        ("DATA_ENCRYPTION_KEY", ""),
        ("DATA_ENCRYPTION_KEY", "dev-only-data-key"),
        ("DATA_ENCRYPTION_KEY", "短" * 10),  # 10 characters, 30 bytes
        ("WECHAT_PAY_API_KEY", ""),
        ("WECHAT_PAY_API_KEY", "sandbox-pay-api-key-32-characters!"),
        ("WECHAT_PAY_CERT_FILE", ""),
        ("WECHAT_PAY_CERT_FILE", "/nonexistent/apiclient_cert.pem"),
        ("WECHAT_PAY_KEY_FILE", ""),
        ("WECHAT_PAY_KEY_FILE", "/"),
        *(("WECHAT_API_BASE", url) for url in SANDBOX_OR_PLAIN),
        *(("WECOM_API_BASE", url + "cgi-bin/") for url in SANDBOX_OR_PLAIN),
        *(("WECHAT_PAY_API_BASE", url) for url in SANDBOX_OR_PLAIN),
        *(("WECOM_WEBHOOK_URL", url + "cgi-bin/webhook/send") for url in SANDBOX_OR_PLAIN),
        *((name, "") for name in SANDBOX_CREDENTIALS),
        *((name, value) for name, value in SANDBOX_CREDENTIALS.items()),
    ],
)
def test_production_refuses_each_development_convenience_naming_it(production, name, value):
    message = _refusal(production | {name: value})
    assert f"  {name}" in message, message
    others = [line for line in message.splitlines()[1:] if not line.startswith(f"  {name}")]
    if name == "WECHAT_SANDBOX":  # the WeChat URLs then default to the sandbox, and are named too
        others = [line for line in others if "points at the WeChat sandbox" not in line]
    assert not others, "only the wrong setting is named"
    if name in KEY_SETTINGS and value:
        assert repr(value) not in message, "a key is never printed"


# A key setting (or a constant holding one) given a value: `NAME=value`, `NAME = "value"`, `"NAME": "value"`.
KEY_ASSIGNMENT = re.compile(
    r"""[A-Z_]*(?:SECRET|ENCRYPTION|DATA|API)_KEY["']?\s*[:=,]\s*(?:["']([^"'\s]+)["']|([^\s"'`,)]+))"""
)
# Stores, caches and tools' state: hidden directories (but CI's) and the embedded stores' files.
SKIPPED_DIRS = {"instance", "__pycache__", "node_modules"}


def _repository_text_files():
    for folder, subfolders, files in os.walk(PROJECT_ROOT):
        subfolders[:] = [f for f in subfolders if f not in SKIPPED_DIRS and (f == ".ci" or not f.startswith("."))]
        for name in files:
            path = Path(folder) / name
            try:
                yield path, path.read_text()
            except (UnicodeDecodeError, OSError):
                continue


def test_no_key_written_in_the_repository_passes_in_production(production):
    """Keys long enough to pass the length check must be among the refused ones, wherever they are written."""
    found = []
    for path, content in _repository_text_files():
        for match in KEY_ASSIGNMENT.finditer(content):
            value = match.group(1) or match.group(2)
            if len(value.encode()) >= 32:
                found.append((value, path))
    assert PROJECT_ROOT / "app/core/config.py" in {path for _, path in found}, "the development keys are found"
    for value, path in found:
        for name in KEY_SETTINGS:
            with pytest.raises(ConfigError, match=f"  {name}: is a development key") as refused:
                check_production_safety(load_config(production | {name: value}))
            assert value not in str(refused.value), path
