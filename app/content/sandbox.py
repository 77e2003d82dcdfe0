"""WeChat content safety in the sandbox: `POST /wxa/msg_sec_check` (v1), answering as WeChat does.

Text containing any word of the CONTENT_RISKY_WORDS setting gets errcode 87014 "risky content"; a body
without a string `content` gets 47001; a bad access token 40001.
"""

from flask import current_app, jsonify

from app.wechat.service import json_body, sandbox_route, wechat_error


@sandbox_route("/wxa/msg_sec_check", methods=["POST"])
def msg_sec_check():
    if not current_app.extensions["valid_token"]("mp"):
        return wechat_error(40001)
    content = json_body().get("content")
    if not isinstance(content, str):
        return wechat_error(47001, "data format error")
    words = current_app.extensions["main_app"].config["CONTENT_RISKY_WORDS"]
    if any(word and word in content for word in words):
        return wechat_error(87014, "risky content")
    return jsonify({"errcode": 0, "errmsg": "ok"})
