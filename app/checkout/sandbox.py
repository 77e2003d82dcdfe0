"""WeChat Pay v2 in the sandbox: unified order, query, close, refund and refund query, with WeChat's XML,
signatures and codes.

Orders live in Redis (shared by every process). `POST /sandbox/pay/simulate` plays the buyer: it marks an
order paid and answers with the signed notification WeChat would POST to the order's notify_url, so dev
and tests deliver it to `/api/v1/webhooks/wechatpay` themselves. `payment_notification` builds one too.

A refund stays PROCESSING, as at WeChat, until `POST /sandbox/pay/refund/settle` plays WeChat finishing it
(SUCCESS, REFUNDCLOSE or CHANGE) and answers the encrypted refund notification for its notify_url, or
until WECHAT_SANDBOX_REFUND_SECONDS have passed (dev: refunds then succeed on their own; 0: never).
"""

import hashlib
import json
import secrets

import xmltodict
from flask import Response, current_app, request
from wechatpy.crypto import RefundCrypto
from wechatpy.pay.utils import calculate_signature, dict_to_xml
from wechatpy.utils import to_binary

from app.core.clock import DEFAULT_ZONE, now_utc
from app.core.redis import key
from app.wechat import service as wechat

ORDER_TTL_SECONDS = 7 * 24 * 3600


def _xml(data: dict) -> Response:
    data = {k: v for k, v in data.items() if v is not None}
    body = dict_to_xml(data, calculate_signature(data, current_app.config["WECHAT_PAY_API_KEY"]))
    return Response(body, mimetype="text/xml")


def _fail(return_msg: str) -> Response:
    # Transport-level failure: return_code FAIL, no signature (as WeChat does).
    return Response(dict_to_xml({"return_code": "FAIL", "return_msg": return_msg}), mimetype="text/xml")


def _base(params: dict) -> dict:
    return {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": params.get("appid"),
        "mch_id": params.get("mch_id"),
        "nonce_str": secrets.token_hex(16),
    }


def _refuse(params: dict, err_code: str, des: str) -> Response:
    return _xml(_base(params) | {"result_code": "FAIL", "err_code": err_code, "err_code_des": des})


def _signed_request() -> tuple[dict | None, Response | None]:
    try:
        parsed = xmltodict.parse(request.get_data())
        params = dict(parsed["xml"]) if parsed and isinstance(parsed.get("xml"), dict) else None
    except Exception:
        params = None
    if params is None:
        return None, _fail("XML格式错误")
    sign = params.pop("sign", None)
    if sign != calculate_signature(params, current_app.config["WECHAT_PAY_API_KEY"]):
        return None, _fail("签名错误")
    if (
        params.get("mch_id") != current_app.config["WECHAT_PAY_MCH_ID"]
        or params.get("appid") != current_app.config["WECHAT_APPID"]
    ):
        return None, _fail("appid和mch_id不匹配")
    return params, None


def _redis():
    return current_app.extensions["redis"]


def _load(out_trade_no: str) -> dict | None:
    raw = _redis().get(key("sandbox", "pay", "order", out_trade_no))
    return json.loads(raw) if raw else None


def _store(order: dict) -> None:
    _redis().set(key("sandbox", "pay", "order", order["out_trade_no"]), json.dumps(order), ex=ORDER_TTL_SECONDS)


def _time_end() -> str:
    return now_utc().astimezone(DEFAULT_ZONE).strftime("%Y%m%d%H%M%S")


def _refund_index(out_refund_no: str) -> str:
    return key("sandbox", "pay", "refund", out_refund_no)


def _load_refund(out_refund_no: str) -> tuple[dict | None, dict | None]:
    """The order holding a refund, and the refund (settled on its own once its time has come)."""
    out_trade_no = _redis().get(_refund_index(out_refund_no))
    order = _load(out_trade_no.decode() if isinstance(out_trade_no, bytes) else out_trade_no or "")
    refund = order["refunds"].get(out_refund_no) if order else None
    auto_seconds = current_app.config["WECHAT_SANDBOX_REFUND_SECONDS"]
    if (
        refund
        and refund["status"] == "PROCESSING"
        and auto_seconds > 0
        and now_utc().timestamp() - refund["asked_at"] >= auto_seconds
    ):
        _finish_refund(order, out_refund_no, "SUCCESS")
    return order, refund


def _finish_refund(order: dict, out_refund_no: str, status: str) -> None:
    refund = order["refunds"][out_refund_no]
    refund["status"] = status
    if status == "SUCCESS":
        refund["success_time"] = now_utc().astimezone(DEFAULT_ZONE).strftime("%Y-%m-%d %H:%M:%S")
    else:
        order["refunded"] -= refund["refund_fee"]  # the money stays with the merchant, refundable again
    _store(order)


@wechat.sandbox_route("/pay/unifiedorder", ["POST"])
def pay_unifiedorder():
    params, failure = _signed_request()
    if failure:
        return failure
    for name in ("body", "out_trade_no", "total_fee", "spbill_create_ip", "notify_url", "trade_type"):
        if not params.get(name):
            return _fail(f"缺少参数{name}")
    if params["trade_type"] == "JSAPI" and not params.get("openid"):
        return _refuse(params, "PARAM_ERROR", "JSAPI支付必须传openid")
    if not str(params["total_fee"]).isdigit() or int(params["total_fee"]) < 1:
        return _refuse(params, "PARAM_ERROR", "total_fee参数错误")
    existing = _load(params["out_trade_no"])
    if existing is not None:
        if existing["state"] == "SUCCESS":
            return _refuse(params, "ORDERPAID", "该订单已支付")
        if existing["state"] == "CLOSED":
            return _refuse(params, "ORDERCLOSED", "该订单已关闭")
        if existing["total_fee"] != int(params["total_fee"]):
            return _refuse(params, "INVALID_REQUEST", "201 商户订单号重复")
        order = existing
    else:
        order = {
            "out_trade_no": params["out_trade_no"],
            "total_fee": int(params["total_fee"]),
            "openid": params.get("openid", ""),
            "notify_url": params["notify_url"],
            "attach": params.get("attach"),
            "state": "NOTPAY",
            "prepay_id": "wx" + secrets.token_hex(15),
            "refunded": 0,
            "refunds": {},
        }
        _store(order)
    return _xml(
        _base(params) | {"result_code": "SUCCESS", "trade_type": params["trade_type"], "prepay_id": order["prepay_id"]}
    )


@wechat.sandbox_route("/pay/orderquery", ["POST"])
def pay_orderquery():
    params, failure = _signed_request()
    if failure:
        return failure
    order = _load(params.get("out_trade_no") or "")
    if order is None:
        return _refuse(params, "ORDERNOTEXIST", "此交易订单号不存在")
    answer = _base(params) | {
        "result_code": "SUCCESS",
        "out_trade_no": order["out_trade_no"],
        "trade_state": order["state"],
        "total_fee": order["total_fee"],
    }
    if order["state"] in ("SUCCESS", "REFUND"):
        answer |= {
            "transaction_id": order["transaction_id"],
            "time_end": order["time_end"],
            "openid": order["openid"],
            "trade_type": "JSAPI",
            "bank_type": "OTHERS",
            "cash_fee": order["total_fee"],
            "fee_type": "CNY",
        }
    return _xml(answer)


@wechat.sandbox_route("/pay/closeorder", ["POST"])
def pay_closeorder():
    params, failure = _signed_request()
    if failure:
        return failure
    order = _load(params.get("out_trade_no") or "")
    if order is None:
        return _refuse(params, "ORDERNOTEXIST", "此交易订单号不存在")
    if order["state"] in ("SUCCESS", "REFUND"):
        return _refuse(params, "ORDERPAID", "订单已支付，不能发起关单")
    order["state"] = "CLOSED"
    _store(order)
    return _xml(_base(params) | {"result_code": "SUCCESS"})


@wechat.sandbox_route("/secapi/pay/refund", ["POST"])
def pay_refund():
    params, failure = _signed_request()
    if failure:
        return failure
    order = _load(params.get("out_trade_no") or "")
    if order is None:
        return _refuse(params, "ORDERNOTEXIST", "订单不存在")
    if order["state"] not in ("SUCCESS", "REFUND"):
        return _refuse(params, "TRADE_STATE_ERROR", "订单状态错误")
    if not str(params.get("refund_fee", "")).isdigit() or int(params.get("total_fee", 0)) != order["total_fee"]:
        return _refuse(params, "PARAM_ERROR", "订单金额或退款金额与之前请求不一致")
    refund_fee = int(params["refund_fee"])
    out_refund_no = params.get("out_refund_no") or ""
    known = order["refunds"].get(out_refund_no)
    if known is None:
        if refund_fee < 1 or order["refunded"] + refund_fee > order["total_fee"]:
            return _refuse(params, "NOTENOUGH", "退款金额大于支付金额")
        known = {
            "refund_id": "50" + secrets.token_hex(13),
            "refund_fee": refund_fee,
            "status": "PROCESSING",
            "asked_at": now_utc().timestamp(),
            "notify_url": params.get("notify_url") or order["notify_url"],
        }
        order["refunds"][out_refund_no] = known
        order["refunded"] += refund_fee
        order["state"] = "REFUND"
        _store(order)
        _redis().set(_refund_index(out_refund_no), order["out_trade_no"], ex=ORDER_TTL_SECONDS)
    elif known["refund_fee"] != refund_fee:
        return _refuse(params, "PARAM_ERROR", "订单金额或退款金额与之前请求不一致")
    return _xml(
        _base(params)
        | {
            "result_code": "SUCCESS",
            "transaction_id": order["transaction_id"],
            "out_trade_no": order["out_trade_no"],
            "out_refund_no": out_refund_no,
            "refund_id": known["refund_id"],
            "refund_fee": known["refund_fee"],
            "total_fee": order["total_fee"],
            "cash_fee": order["total_fee"],
        }
    )


@wechat.sandbox_route("/pay/refundquery", ["POST"])
def pay_refundquery():
    params, failure = _signed_request()
    if failure:
        return failure
    order, refund = _load_refund(params.get("out_refund_no") or "")
    if refund is None:
        return _refuse(params, "REFUNDNOTEXIST", "退款订单查询失败")
    out_refund_no = params["out_refund_no"]
    answer = _base(params) | {
        "result_code": "SUCCESS",
        "transaction_id": order["transaction_id"],
        "out_trade_no": order["out_trade_no"],
        "total_fee": order["total_fee"],
        "cash_fee": order["total_fee"],
        "refund_count": 1,
        "out_refund_no_0": out_refund_no,
        "refund_id_0": refund["refund_id"],
        "refund_fee_0": refund["refund_fee"],
        "refund_status_0": refund["status"],
        "refund_recv_accout_0": "支付用户的零钱",
        "refund_success_time_0": refund.get("success_time"),
    }
    return _xml(answer)


def refund_notification(out_refund_no: str, *, api_key: str | None = None) -> str:
    """The XML WeChat POSTs to a refund's notify_url once it finished: req_info encrypted with md5(api key)."""
    config = current_app.config
    order, refund = _load_refund(out_refund_no)
    order, refund = order or {}, refund or {}
    info = {
        "out_refund_no": out_refund_no,
        "out_trade_no": order.get("out_trade_no", ""),
        "transaction_id": order.get("transaction_id", ""),
        "refund_id": refund.get("refund_id", ""),
        "total_fee": order.get("total_fee", 0),
        "refund_fee": refund.get("refund_fee", 0),
        "settlement_refund_fee": refund.get("refund_fee", 0),
        "refund_status": refund.get("status", ""),
        "success_time": refund.get("success_time", ""),
        "refund_recv_accout": "支付用户的零钱",
        "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
        "refund_request_source": "API",
    }
    plain = "<root>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in info.items()) + "</root>"
    cipher = RefundCrypto(to_binary(hashlib.md5(to_binary(api_key or config["WECHAT_PAY_API_KEY"])).hexdigest()))
    data = {
        "return_code": "SUCCESS",
        "appid": config["WECHAT_APPID"],
        "mch_id": config["WECHAT_PAY_MCH_ID"],
        "nonce_str": secrets.token_hex(16),
        "req_info": cipher.encrypt(plain).decode(),
    }
    return dict_to_xml(data)


def settle_refund(out_refund_no: str, status: str = "SUCCESS") -> dict | None:
    """WeChat finishes a processing refund with `status` (SUCCESS, REFUNDCLOSE or CHANGE); None if unknown."""
    order, refund = _load_refund(out_refund_no)
    if refund is not None and refund["status"] == "PROCESSING":
        _finish_refund(order, out_refund_no, status)
    return refund


@wechat.sandbox_route("/sandbox/pay/refund/settle", ["POST"])
def pay_refund_settle():
    """Play WeChat finishing a refund; answers the refund notification XML to deliver to our webhook."""
    payload = request.get_json(silent=True) or {}
    out_refund_no = str(payload.get("out_refund_no") or "")
    status = str(payload.get("status") or "SUCCESS")
    if status not in ("SUCCESS", "REFUNDCLOSE", "CHANGE"):
        return Response(
            "<xml><error>status is SUCCESS, REFUNDCLOSE or CHANGE</error></xml>", status=400, mimetype="text/xml"
        )
    refund = settle_refund(out_refund_no, status)
    if refund is None:
        return Response("<xml><error>unknown out_refund_no</error></xml>", status=404, mimetype="text/xml")
    return Response(
        refund_notification(out_refund_no), mimetype="text/xml", headers={"X-Notify-Url": refund["notify_url"]}
    )


def payment_notification(
    out_trade_no: str, *, total_fee: int | None = None, transaction_id: str | None = None, api_key: str | None = None
) -> str:
    """The signed XML WeChat POSTs to notify_url for a paid order (`total_fee`/`api_key` override to forge one)."""
    config = current_app.config
    order = _load(out_trade_no) or {}
    data = {
        "appid": config["WECHAT_APPID"],
        "mch_id": config["WECHAT_PAY_MCH_ID"],
        "nonce_str": secrets.token_hex(16),
        "result_code": "SUCCESS",
        "return_code": "SUCCESS",
        "openid": order.get("openid", ""),
        "is_subscribe": "N",
        "trade_type": "JSAPI",
        "bank_type": "OTHERS",
        "total_fee": total_fee if total_fee is not None else order.get("total_fee", 0),
        "cash_fee": total_fee if total_fee is not None else order.get("total_fee", 0),
        "fee_type": "CNY",
        "transaction_id": transaction_id or order.get("transaction_id") or "4200" + secrets.token_hex(12),
        "out_trade_no": out_trade_no,
        "time_end": order.get("time_end") or _time_end(),
    }
    return dict_to_xml(data, calculate_signature(data, api_key or config["WECHAT_PAY_API_KEY"]))


def mark_paid(out_trade_no: str) -> dict | None:
    """The buyer pays: the sandbox order becomes SUCCESS (again and again: the same transaction)."""
    order = _load(out_trade_no)
    if order is None or order["state"] == "CLOSED":
        return order
    if order["state"] == "NOTPAY":
        order |= {"state": "SUCCESS", "transaction_id": "4200" + secrets.token_hex(12), "time_end": _time_end()}
        _store(order)
    return order


@wechat.sandbox_route("/sandbox/pay/simulate", ["POST"])
def pay_simulate():
    """Play the buyer paying `out_trade_no`; answers the notification XML to deliver to our webhook."""
    payload = request.get_json(silent=True) or {}
    out_trade_no = str(payload.get("out_trade_no") or "")
    order = mark_paid(out_trade_no)
    if order is None:
        return Response("<xml><error>unknown out_trade_no</error></xml>", status=404, mimetype="text/xml")
    if order["state"] == "CLOSED":
        return Response("<xml><error>order closed</error></xml>", status=409, mimetype="text/xml")
    return Response(
        payment_notification(out_trade_no), mimetype="text/xml", headers={"X-Notify-Url": order["notify_url"]}
    )
