"""The WeChat sandbox's WeCom delivery endpoints: group robot webhook and customer-group mass messages.

Shapes and error codes follow WeCom's: the robot takes 20 messages a minute per key (45009 beyond),
`add_msg_template` creates a task the host must confirm, `get_groupmsg_send_result` reports per-group status
(0 not sent, 1 sent, 2 not a customer group of the sender, 3 already received a mass message that day).
The host's tap is `POST /sandbox/groupmsg/<msgid>/send`. Keys starting with `invalid` behave as revoked robots.
"""

import json
import secrets
import time

from flask import current_app, jsonify, request

from app.core.redis import key
from app.wechat.service import json_body, sandbox_route, wechat_error

ROBOT_LIMIT = 20
ROBOT_MESSAGE_TYPES = {"text", "markdown", "image", "news", "file", "template_card"}
ROBOT_KEEP = 1000
GROUPMSG_TTL_SECONDS = 3 * 24 * 3600
ERRORS = {
    93000: "invalid webhook url",
    45009: "api freq out of limit",
    40008: "invalid message type",
    44004: "empty content",
    40058: "content exceed max length",
    41063: "invalid msgid",
    41048: "invalid sender",
}


def _redis():
    return current_app.extensions["redis"]


def robot_messages(redis, webhook_key: str) -> list[dict]:
    """What a sandbox robot received, oldest first (tests and the demo read this)."""
    return [json.loads(m) for m in reversed(redis.lrange(key("sandbox", "robot", webhook_key, "messages"), 0, -1))]


@sandbox_route("/cgi-bin/webhook/send", ["POST"])
def robot_send():
    webhook_key = request.args.get("key", "")
    if not webhook_key or webhook_key.startswith("invalid"):
        return wechat_error(93000, ERRORS[93000])
    minute = int(time.time() // 60)
    counter = key("sandbox", "robot", webhook_key, "minute", minute)
    redis = _redis()
    sent = redis.incr(counter)
    redis.expire(counter, 120)
    if sent > ROBOT_LIMIT:
        return wechat_error(45009, ERRORS[45009])
    payload = json_body()
    msgtype = payload.get("msgtype")
    if msgtype not in ROBOT_MESSAGE_TYPES:
        return wechat_error(40008, ERRORS[40008])
    body = payload.get(msgtype) or {}
    if msgtype in ("text", "markdown"):
        content = body.get("content") if isinstance(body, dict) else None
        if not content:
            return wechat_error(44004, ERRORS[44004])
        if len(content.encode()) > (2048 if msgtype == "text" else 4096):
            return wechat_error(40058, ERRORS[40058])
    messages = key("sandbox", "robot", webhook_key, "messages")
    redis.lpush(messages, json.dumps(payload, ensure_ascii=False))
    redis.ltrim(messages, 0, ROBOT_KEEP - 1)
    return jsonify({"errcode": 0, "errmsg": "ok"})


def _groupmsg_key(msgid: str) -> str:
    return key("sandbox", "groupmsg", msgid)


@sandbox_route("/cgi-bin/externalcontact/add_msg_template", ["POST"])
def add_msg_template():
    if not current_app.extensions["valid_token"]("wecom"):
        return wechat_error(40001)
    payload = json_body()
    if payload.get("chat_type") != "group":
        return wechat_error(41048, "chat_type must be group here")
    if not payload.get("sender"):
        return wechat_error(41048, ERRORS[41048])
    chat_ids = payload.get("chat_id_list") or []
    if not isinstance(chat_ids, list) or not chat_ids or len(chat_ids) > 2000:
        return wechat_error(41048, "chat_id_list needs 1 to 2000 groups")
    if not (payload.get("text") or {}).get("content") and not payload.get("attachments"):
        return wechat_error(44004, ERRORS[44004])
    fail_list = [c for c in chat_ids if str(c).startswith("missing")]
    msgid = "msg" + secrets.token_urlsafe(18)
    record = {
        "sender": payload["sender"],
        "created": int(time.time()),
        "payload": payload,
        "status": {c: 0 for c in chat_ids if c not in fail_list},
    }
    _redis().set(_groupmsg_key(msgid), json.dumps(record, ensure_ascii=False), ex=GROUPMSG_TTL_SECONDS)
    return jsonify({"errcode": 0, "errmsg": "ok", "fail_list": fail_list, "msgid": msgid})


@sandbox_route("/cgi-bin/externalcontact/get_groupmsg_send_result", ["POST"])
def get_groupmsg_send_result():
    if not current_app.extensions["valid_token"]("wecom"):
        return wechat_error(40001)
    payload = json_body()
    raw = _redis().get(_groupmsg_key(str(payload.get("msgid", ""))))
    if raw is None:
        return wechat_error(41063, ERRORS[41063])
    record = json.loads(raw)
    if payload.get("userid") != record["sender"]:
        return wechat_error(41048, ERRORS[41048])
    send_list = [
        {"chat_id": chat, "userid": record["sender"], "status": status}
        | ({"send_time": record["sent"]} if status == 1 else {})
        for chat, status in record["status"].items()
    ]
    return jsonify({"errcode": 0, "errmsg": "ok", "next_cursor": "", "send_list": send_list})


@sandbox_route("/sandbox/groupmsg/<msgid>/send", ["POST"])
def host_confirms(msgid: str):
    """The host taps send in WeCom: each group gets it, unless it already had a mass message today."""
    redis = _redis()
    raw = redis.get(_groupmsg_key(msgid))
    if raw is None:
        return wechat_error(41063, ERRORS[41063])
    record = json.loads(raw)
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    for chat in record["status"]:
        if record["status"][chat] == 0:
            first = redis.set(key("sandbox", "groupmsg-day", chat, today), msgid, nx=True, ex=2 * 24 * 3600)
            record["status"][chat] = 1 if first else 3
    record["sent"] = int(time.time())
    redis.set(_groupmsg_key(msgid), json.dumps(record, ensure_ascii=False), ex=GROUPMSG_TTL_SECONDS)
    return jsonify({"errcode": 0, "errmsg": "ok"})
