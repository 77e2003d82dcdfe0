"""WeChat Pay v2 transfer endpoints in the sandbox, with WeChat's XML shapes and error codes.

The amount decides the outcome (its last two digits, in fen):
  13 → FAIL V2_ACCOUNT_SIMPLE_BAN (final failure)
  44 → SYSTEMERROR, yet the money moved (a query says SUCCESS)
  45 → SYSTEMERROR, and the transfer failed (a query says FAILED)
  46 → SYSTEMERROR on the first call and nothing recorded (query: NOT_FOUND); a retry succeeds
  anything else → SUCCESS
A repeated call with the same partner_trade_no returns the recorded result, as WeChat does.
"""

import secrets

import xmltodict
from flask import Response, current_app, request
from wechatpy.pay.utils import calculate_signature, dict_to_xml

from app.core.clock import now_utc
from app.core.redis import key
from app.wechat import service as wechat

FAILURES = {13: ("V2_ACCOUNT_SIMPLE_BAN", "非实名用户账号不可发放")}
SYSTEM_ERROR = ("SYSTEMERROR", "系统繁忙，请稍后再试。")


def _xml(data: dict) -> Response:
    body = {**data, "nonce_str": secrets.token_hex(16)}
    return Response(
        dict_to_xml(body, calculate_signature(body, current_app.config["WECHAT_PAY_API_KEY"])), mimetype="text/xml"
    )


def _request_data() -> dict | None:
    try:
        data = dict(xmltodict.parse(request.get_data())["xml"])
    except Exception:
        return None
    sign = data.pop("sign", "")
    return data if sign == calculate_signature(data, current_app.config["WECHAT_PAY_API_KEY"]) else None


def _fail(code: str, message: str) -> Response:
    return _xml({"return_code": "SUCCESS", "result_code": "FAIL", "err_code": code, "err_code_des": message})


def _record(trade_no: str) -> str:
    return key("sandbox", "transfer", trade_no)


@wechat.sandbox_route("/mmpaymkttransfers/promotion/transfers", methods=["POST"])
def pay_transfer():
    data = _request_data()
    if data is None:
        return _xml({"return_code": "FAIL", "return_msg": "签名错误"})
    if (
        data.get("mchid") != current_app.config["WECHAT_PAY_MCH_ID"]
        or data.get("mch_appid") != current_app.config["WECHAT_APPID"]
    ):
        return _fail("PARAM_ERROR", "商户号或appid错误")
    trade_no, amount = data.get("partner_trade_no", ""), int(data.get("amount", "0") or 0)
    if not trade_no or amount < 30:
        return _fail("PARAM_ERROR", "参数错误")
    redis = current_app.extensions["redis"]
    attempts = redis.hincrby(_record(trade_no) + ":attempts", "n", 1)
    recorded = redis.hgetall(_record(trade_no))
    if not recorded:
        ending = amount % 100
        if ending == 46 and attempts == 1:
            return _fail(*SYSTEM_ERROR)
        status = "FAILED" if ending in FAILURES or ending == 45 else "SUCCESS"
        recorded = {
            b"status": status.encode(),
            b"amount": str(amount).encode(),
            b"openid": data["openid"].encode(),
            b"payment_no": ("1000018301" + secrets.token_hex(8)).encode(),
            b"time": now_utc().strftime("%Y-%m-%d %H:%M:%S").encode(),
            b"code": (FAILURES.get(ending, SYSTEM_ERROR)[0] if status == "FAILED" else "").encode(),
        }
        redis.hset(_record(trade_no), mapping=recorded)
        if ending in (44, 45):
            return _fail(*SYSTEM_ERROR)
    if recorded[b"status"] == b"FAILED":
        code = recorded[b"code"].decode()
        return _fail(code, dict(FAILURES.values()).get(code, SYSTEM_ERROR[1]))
    return _xml(
        {
            "return_code": "SUCCESS",
            "result_code": "SUCCESS",
            "mch_appid": data["mch_appid"],
            "mchid": data["mchid"],
            "partner_trade_no": trade_no,
            "payment_no": recorded[b"payment_no"].decode(),
            "payment_time": recorded[b"time"].decode(),
        }
    )


@wechat.sandbox_route("/mmpaymkttransfers/gettransferinfo", methods=["POST"])
def pay_transfer_query():
    data = _request_data()
    if data is None:
        return _xml({"return_code": "FAIL", "return_msg": "签名错误"})
    recorded = current_app.extensions["redis"].hgetall(_record(data.get("partner_trade_no", "")))
    if not recorded:
        return _fail("NOT_FOUND", "指定单号数据不存在")
    status = recorded[b"status"].decode()
    return _xml(
        {
            "return_code": "SUCCESS",
            "result_code": "SUCCESS",
            "partner_trade_no": data["partner_trade_no"],
            "mch_id": data.get("mch_id", ""),
            "detail_id": recorded[b"payment_no"].decode(),
            "status": status,
            "reason": "" if status == "SUCCESS" else recorded[b"code"].decode(),
            "openid": recorded[b"openid"].decode(),
            "payment_amount": recorded[b"amount"].decode(),
            "transfer_time": recorded[b"time"].decode(),
            "payment_time": recorded[b"time"].decode(),
            "desc": "",
        }
    )
