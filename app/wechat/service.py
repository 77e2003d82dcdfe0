"""WeChat calls the domains need, with WeChat's failures turned into clear API errors, and the sandbox's
registration for the domains that answer more of WeChat in it (their `sandbox.py`)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from flask import current_app
from wechatpy import WeChatPay
from wechatpy.exceptions import WeChatClientException, WeChatException

from app.core.config import SANDBOX_BASE_URL
from app.core.errors import ApiError, UpstreamError
from app.wechat.clients import clients
from app.wechat.sandbox import json_body as json_body  # domains' sandbox endpoints answer as WeChat does
from app.wechat.sandbox import mount_in_process
from app.wechat.sandbox import sandbox_route as sandbox_route  # domains add their WeChat endpoints to the sandbox
from app.wechat.sandbox import wechat_error as wechat_error

LOGIN_REJECTED = {40029, 40163, 40226}  # invalid code, code already used, high-risk user


@contextmanager
def translated_errors(action: str) -> Iterator[None]:
    """Turn wechatpy and transport failures into ApiErrors (never a 500)."""
    try:
        yield
    except WeChatClientException as exc:
        errcode = exc.errcode
        details = {"errcode": errcode, "errmsg": exc.errmsg}
        if errcode == 45011:
            raise ApiError(
                f"WeChat is rate limiting {action}; try again shortly.",
                status=429,
                code="wechat_rate_limited",
                errors=details,
            ) from exc
        raise UpstreamError(f"WeChat refused {action}.", code="wechat_error", errors=details) from exc
    except (WeChatException, requests.RequestException) as exc:
        raise UpstreamError(
            f"WeChat could not be reached for {action}.",
            code="wechat_unreachable",
            errors={"reason": type(exc).__name__},
        ) from exc


def pay_client() -> WeChatPay:
    """The WeChat Pay (v2) client: payments, refunds and transfers (wrap calls in `translated_errors`)."""
    return clients().pay


@dataclass(frozen=True)
class WeChatIdentity:
    openid: str
    unionid: str | None


def code_to_session(*, code: str) -> WeChatIdentity:
    """Exchange a wx.login() code for the user's openid; a code WeChat rejects is a 401."""
    try:
        with translated_errors("the login code"):
            result = clients().miniprogram.wxa.code_to_session(code)
    except UpstreamError as exc:
        errcode = (exc.errors or {}).get("errcode")
        if errcode in LOGIN_REJECTED:
            raise ApiError(
                "WeChat did not accept this login code.", status=401, code="wechat_login_failed", errors=exc.errors
            ) from exc
        raise
    if not isinstance(result, dict) or not result.get("openid"):
        raise UpstreamError("WeChat answered the login without an openid.", code="wechat_bad_response")
    return WeChatIdentity(openid=result["openid"], unionid=result.get("unionid"))


def miniprogram_code_png(*, scene: str, page: str | None = None, width: int = 430) -> bytes:
    """Make an unlimited mini-program code image for `scene` (≤ 32 characters)."""
    with translated_errors("the mini-program code"):
        result = clients().miniprogram.wxa.get_wxa_code_unlimited(scene, width=width, page=page)
    content = getattr(result, "content", None)
    if not content or not content.startswith(b"\x89PNG"):
        raise UpstreamError("WeChat did not return an image.", code="wechat_bad_response")
    return content


def check_text_security(*, text: str) -> None:
    """Ask WeChat's content safety about `text`; a refusal is an UpstreamError carrying WeChat's errcode."""
    with translated_errors("the content safety check"):
        clients().miniprogram.wxa.check_text_security(text)


def add_group_mass_message(payload: dict) -> dict:
    """Create a WeCom customer-group mass message (`externalcontact/add_msg_template`); the host confirms it.

    WeChat's and the transport's exceptions pass through untranslated: the caller tells a refusal from a request
    that may have arrived.
    """
    return clients().wecom.external_contact.add_msg_template(payload)


def group_mass_message_result(*, msgid: str, sender: str) -> dict:
    """Each group's status of a mass message (`externalcontact/get_groupmsg_send_result`); exceptions pass through."""
    return clients().wecom.post(
        "externalcontact/get_groupmsg_send_result", data={"msgid": msgid, "userid": sender, "limit": 1000}
    )


def serve_from_sandbox(session: requests.Session) -> None:
    """Hand a session's requests for WeChat to the in-process sandbox while the sandbox is on (no socket)."""
    if current_app.config["WECHAT_SANDBOX"]:
        mount_in_process(session, SANDBOX_BASE_URL, current_app._get_current_object())
