"""The one place that builds wechatpy clients (mini-program, WeCom, WeChat Pay) from config.

Base URLs come from config. wechatpy fetches access tokens from absolute URLs, so the subclasses below
derive the token URL from the configured base too. When the base is the in-process sandbox address, the
clients' HTTP sessions are given a transport that hands requests to the sandbox WSGI app directly.
"""

from flask import Flask, current_app
from wechatpy import WeChatClient, WeChatPay
from wechatpy.enterprise import WeChatClient as WeComClient
from wechatpy.session.redisstorage import RedisStorage

from app.core.config import SANDBOX_BASE_URL
from app.core.redis import KEY_PREFIX
from app.wechat.sandbox import mount_in_process


class MiniProgramClient(WeChatClient):
    def __init__(self, *, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.API_BASE_URL = base_url + "cgi-bin/"
        self.wxa.API_BASE_URL = base_url

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


class WeComApiClient(WeComClient):
    def __init__(self, *, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.API_BASE_URL = base_url

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=self.API_BASE_URL + "gettoken", params={"corpid": self.corp_id, "corpsecret": self.secret}
        )


class Clients:
    """The wechatpy clients of one app, created once and shared by its requests and jobs."""

    def __init__(self, app: Flask):
        config = app.config
        storage = RedisStorage(app.extensions["redis"], prefix=KEY_PREFIX + "wechatpy")
        timeout = config["WECHAT_TIMEOUT_SECONDS"]
        self.miniprogram = MiniProgramClient(
            base_url=config["WECHAT_API_BASE"],
            appid=config["WECHAT_APPID"],
            secret=config["WECHAT_SECRET"],
            session=storage,
            timeout=timeout,
        )
        self.wecom = WeComApiClient(
            base_url=config["WECOM_API_BASE"],
            corp_id=config["WECOM_CORP_ID"],
            secret=config["WECOM_SECRET"],
            session=storage,
            timeout=timeout,
        )
        self.pay = WeChatPay(
            appid=config["WECHAT_APPID"],
            api_key=config["WECHAT_PAY_API_KEY"],
            mch_id=config["WECHAT_PAY_MCH_ID"],
            mch_cert=config["WECHAT_PAY_CERT_FILE"],
            mch_key=config["WECHAT_PAY_KEY_FILE"],
            timeout=timeout,
        )
        self.pay.API_BASE_URL = config["WECHAT_PAY_API_BASE"]
        self.http_sessions = [self.miniprogram._http, self.wecom._http, self.pay._http]
        if config["WECHAT_SANDBOX"]:
            for session in self.http_sessions:
                mount_in_process(session, SANDBOX_BASE_URL, app)


def init_app(app: Flask) -> None:
    app.extensions["wechat"] = Clients(app)


def clients() -> Clients:
    return current_app.extensions["wechat"]
