"""WeChat calls the domains need, with WeChat's failures turned into clear API errors."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from wechatpy import WeChatPay
from wechatpy.exceptions import WeChatClientException, WeChatException

from app.core.errors import ApiError, UpstreamError
from app.wechat.clients import clients
from app.wechat.sandbox import sandbox_route as sandbox_route  # domains add their WeChat endpoints to the sandbox

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
