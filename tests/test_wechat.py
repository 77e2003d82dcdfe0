import pytest
import requests

from app import create_app
from app.core.config import check_production_safety, load_config
from app.wechat import service as wechat
from app.wechat.clients import Clients, clients
from tests.helpers import assert_error


def test_the_sandbox_is_refused_in_production():
    with pytest.raises(RuntimeError, match="sandbox is refused"):
        create_app({"ENV": "production", "WECHAT_SANDBOX": True, "SECRET_KEY": "x"})


def test_production_defaults_point_at_wechat_without_the_sandbox():
    config = load_config({"ENV": "production", "SECRET_KEY": "s"})
    assert config["WECHAT_SANDBOX"] is False
    assert config["WECHAT_API_BASE"] == "https://api.weixin.qq.com/"
    assert config["WECOM_API_BASE"] == "https://qyapi.weixin.qq.com/cgi-bin/"


def test_database_url_maps_to_psycopg3():
    assert (
        load_config({"DATABASE_URL": "postgres://u@h/db"})["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@h/db"
    )
    assert load_config({"INSTANCE_PATH": "/tmp/x"})["SQLALCHEMY_DATABASE_URI"] == "sqlite:////tmp/x/mamaquan.db"


def test_clients_use_configured_base_urls(app):
    with app.app_context():
        built = clients()
        assert app.config["WECHAT_API_BASE"] + "cgi-bin/" == built.miniprogram.API_BASE_URL
        assert app.config["WECHAT_API_BASE"] == built.miniprogram.wxa.API_BASE_URL
        assert app.config["WECOM_API_BASE"] == built.wecom.API_BASE_URL
        assert app.config["WECHAT_PAY_API_BASE"] == built.pay.API_BASE_URL


def test_the_sandbox_answers_over_http_too(client):
    ok = client.get(
        "/wechat-sandbox/sns/jscode2session",
        query_string={
            "appid": "wxsandboxappid0001",
            "secret": "sandbox-secret",
            "js_code": "sandbox:zoe",
            "grant_type": "authorization_code",
        },
    ).get_json()
    assert ok["openid"] == "zoe" and ok["session_key"]
    bad = client.get(
        "/wechat-sandbox/sns/jscode2session",
        query_string={"appid": "wxsandboxappid0001", "secret": "sandbox-secret", "js_code": "nope"},
    ).get_json()
    assert bad["errcode"] == 40029 and bad["errmsg"].startswith("invalid code")
    wrong_secret = client.get(
        "/wechat-sandbox/cgi-bin/token",
        query_string={"grant_type": "client_credential", "appid": "wxsandboxappid0001", "secret": "wrong"},
    ).get_json()
    assert wrong_secret["errcode"] == 40125


def test_an_unreachable_wechat_is_502_not_500(api, app, monkeypatch):
    alice = api.as_user("alice")

    def refuse(*args, **kwargs):
        raise requests.ConnectionError("connection refused")

    monkeypatch.setattr(clients().miniprogram._http, "request", refuse)
    body = assert_error(alice.get("/api/v1/me/invite"), 502, "wechat_unreachable")
    assert body["errors"] == {"reason": "ConnectionError"}


def test_wechat_rejecting_a_call_is_502_with_its_errcode(app):
    from app.core.errors import UpstreamError

    with pytest.raises(UpstreamError) as failed:
        wechat.miniprogram_code_png(scene="x" * 33)
    assert failed.value.status == 502 and failed.value.errors["errcode"] == 40169


def test_an_expired_access_token_is_refreshed(app):
    from app.core.redis import get_redis

    first = wechat.miniprogram_code_png(scene="AAAA")
    for key in get_redis().scan_iter("mmq:sandbox:mp:token:*"):
        get_redis().delete(key)  # WeChat forgets the token: 40001, and wechatpy fetches a new one
    assert wechat.miniprogram_code_png(scene="AAAA") == first


def test_production_needs_the_merchant_key_and_certificate():
    """Refunds (secapi/pay/refund) and transfers need WeChat Pay's client certificate; notifications need our key."""
    real = {"ENV": "production", "SECRET_KEY": "s", "DATA_ENCRYPTION_KEY": "d"}
    for missing in ("WECHAT_PAY_API_KEY", "WECHAT_PAY_CERT_FILE", "WECHAT_PAY_KEY_FILE"):
        given = {
            "WECHAT_PAY_API_KEY": "k" * 32,
            "WECHAT_PAY_CERT_FILE": "/etc/mmq/apiclient_cert.pem",
            "WECHAT_PAY_KEY_FILE": "/etc/mmq/apiclient_key.pem",
        }
        del given[missing]
        with pytest.raises(RuntimeError, match=missing):
            check_production_safety(load_config(real | given))


def test_the_pay_client_presents_the_merchant_certificate(app):
    with app.app_context():
        config = {
            "WECHAT_PAY_CERT_FILE": "/etc/mmq/apiclient_cert.pem",
            "WECHAT_PAY_KEY_FILE": "/etc/mmq/apiclient_key.pem",
        }
        previous = {name: app.config.get(name) for name in config}
        app.config.update(config)
        try:
            pay = Clients(app).pay
        finally:
            app.config.update(previous)
        assert (pay.mch_cert, pay.mch_key) == ("/etc/mmq/apiclient_cert.pem", "/etc/mmq/apiclient_key.pem")
