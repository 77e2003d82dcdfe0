"""The payout channel: WeChat Pay v2 "企业付款到零钱" through wechatpy, behind one small interface.

WeChat is moving merchants to the v3 "商家转账" API; a v3 channel only has to answer the same
`send` and `query` with the same outcomes.
"""

from dataclasses import dataclass

import requests
from flask import current_app
from wechatpy.exceptions import WeChatException, WeChatPayException

from app.wechat import service as wechat

# WeChat's answers that do not say whether the money moved: query with the same partner_trade_no.
UNDECIDED_CODES = {"SYSTEMERROR", "PROCESSING"}


@dataclass(frozen=True)
class Outcome:
    status: str  # "succeeded", "failed", "unknown" (and, for a query, "not_found")
    code: str | None = None
    message: str | None = None
    payment_no: str | None = None


def send(*, partner_trade_no: str, openid: str, amount_fen: int, description: str) -> Outcome:
    """Ask WeChat Pay to transfer `amount_fen` to `openid`; the same trade number pays at most once."""
    try:
        result = wechat.pay_client().transfer.transfer(
            user_id=openid,
            amount=amount_fen,
            desc=description,
            check_name="NO_CHECK",
            out_trade_no=partner_trade_no,
            client_ip=current_app.config["PAYOUT_CLIENT_IP"],
        )
    except WeChatPayException as exc:
        if exc.errcode in UNDECIDED_CODES or exc.return_code != "SUCCESS":
            return Outcome("unknown", exc.errcode or exc.return_code, exc.errmsg or exc.return_msg)
        return Outcome("failed", exc.errcode, exc.errmsg)
    except (WeChatException, requests.RequestException) as exc:
        return Outcome("unknown", "transport", type(exc).__name__)
    if not isinstance(result, dict):
        return Outcome("unknown", "bad_response", "WeChat Pay answered something that is not XML")
    return Outcome("succeeded", payment_no=result.get("payment_no"))


def query(*, partner_trade_no: str) -> Outcome:
    """Ask WeChat Pay what became of a transfer."""
    try:
        result = wechat.pay_client().transfer.query(out_trade_no=partner_trade_no)
    except WeChatPayException as exc:
        if exc.errcode == "NOT_FOUND":
            return Outcome("not_found", exc.errcode, exc.errmsg)
        return Outcome("unknown", exc.errcode or exc.return_code, exc.errmsg or exc.return_msg)
    except (WeChatException, requests.RequestException) as exc:
        return Outcome("unknown", "transport", type(exc).__name__)
    if not isinstance(result, dict):
        return Outcome("unknown", "bad_response", "WeChat Pay answered something that is not XML")
    status = result.get("status")
    if status == "SUCCESS":
        return Outcome("succeeded", payment_no=result.get("detail_id"))
    if status == "FAILED":
        return Outcome("failed", "FAILED", result.get("reason"))
    return Outcome("unknown", status, result.get("reason"))
