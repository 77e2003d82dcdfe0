"""A local stand-in for WeChat's servers (dev and tests only; refused when ENV=production).

It answers with WeChat's real response shapes and error codes. State (issued access tokens and what
later issues record) lives in Redis so every process sees the same sandbox.
"""

import base64
import hashlib
import json
import re
import secrets
import struct
import zlib
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from flask import Flask, Response, jsonify, request
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import Client

from app.core.redis import key

SANDBOX_CODE = re.compile(r"^sandbox:([A-Za-z0-9_\-]{1,64})$")
TOKEN_TTL_SECONDS = 7200
MAX_SCENE_LENGTH = 32

ERRORS = {
    40001: "invalid credential, access_token is invalid or not latest",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40169: "invalid length for scene, or the data is not json",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
}

# Endpoints added by later features register here: (rule, methods, view).
_extensions: list[tuple[str, list[str], Callable]] = []


def wechat_error(errcode: int, errmsg: str | None = None) -> Response:
    """WeChat answers errors with HTTP 200 and an errcode/errmsg body; so does the sandbox."""
    rid = secrets.token_hex(4)
    return jsonify({"errcode": errcode, "errmsg": f"{errmsg or ERRORS.get(errcode, 'error')} rid: {rid}"})


def json_body() -> dict:
    """WeChat reads JSON bodies whatever their content type; so does the sandbox."""
    try:
        payload = json.loads(request.get_data() or b"{}")
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def sandbox_route(rule: str, methods: list[str]) -> Callable:
    """Register an extra sandbox endpoint (used by the domains that need more of WeChat)."""

    def decorator(view: Callable) -> Callable:
        _extensions.append((rule, methods, view))
        return view

    return decorator


def create_sandbox_app(main_app: Flask) -> Flask:
    """Build the sandbox WSGI app, sharing the main app's config and Redis."""
    sandbox = Flask("wechat_sandbox")
    sandbox.config.update(main_app.config)
    sandbox.extensions["redis"] = main_app.extensions["redis"]
    sandbox.extensions["main_app"] = main_app

    def redis():
        return sandbox.extensions["redis"]

    def valid_token(kind: str) -> bool:
        token = request.args.get("access_token", "")
        return bool(token) and redis().exists(key("sandbox", kind, "token", token)) == 1

    sandbox.extensions["valid_token"] = valid_token

    def issue_token(kind: str) -> Response:
        token = secrets.token_urlsafe(24)
        redis().set(key("sandbox", kind, "token", token), 1, ex=TOKEN_TTL_SECONDS)
        return jsonify(
            {"access_token": token, "expires_in": TOKEN_TTL_SECONDS}
            | ({"errcode": 0, "errmsg": "ok"} if kind == "wecom" else {})
        )

    @sandbox.get("/cgi-bin/token")
    def token():
        if request.args.get("appid") != sandbox.config["WECHAT_APPID"]:
            return wechat_error(40013)
        if request.args.get("secret") != sandbox.config["WECHAT_SECRET"]:
            return wechat_error(40125)
        return issue_token("mp")

    @sandbox.get("/cgi-bin/gettoken")
    def wecom_token():
        if (
            request.args.get("corpid") != sandbox.config["WECOM_CORP_ID"]
            or request.args.get("corpsecret") != sandbox.config["WECOM_SECRET"]
        ):
            return wechat_error(40001, "invalid credential")
        return issue_token("wecom")

    @sandbox.get("/sns/jscode2session")
    def jscode2session():
        if (
            request.args.get("appid") != sandbox.config["WECHAT_APPID"]
            or request.args.get("secret") != sandbox.config["WECHAT_SECRET"]
        ):
            return wechat_error(40125)
        code = request.args.get("js_code", "")
        if code == "sandbox:!throttled":
            return wechat_error(45011)
        match = SANDBOX_CODE.match(code)
        if not match:
            return wechat_error(40029)
        openid = match.group(1)
        session_key = base64.b64encode(hashlib.sha256(openid.encode()).digest()[:16]).decode()
        return jsonify({"openid": openid, "session_key": session_key})

    @sandbox.post("/wxa/getwxacodeunlimit")
    def wxacode_unlimited():
        if not valid_token("mp"):
            return wechat_error(40001)
        payload = json_body()
        scene = payload.get("scene")
        if not isinstance(scene, str) or not 0 < len(scene) <= MAX_SCENE_LENGTH:
            return wechat_error(40169)
        width = payload.get("width") or 430
        return Response(qr_like_png(scene + "|" + str(payload.get("page") or ""), int(width)), mimetype="image/png")

    for rule, methods, view in _extensions:
        sandbox.add_url_rule(rule, view.__name__, view, methods=methods)
    return sandbox


def qr_like_png(text: str, width: int = 430) -> bytes:
    """A real PNG: a square grid of modules drawn from a hash of `text` (deterministic, not a scannable code)."""
    modules = 29
    scale = max(1, min(width, 1280) // modules)
    digest = b""
    counter = 0
    while len(digest) * 8 < modules * modules:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    bits = [(digest[i // 8] >> (i % 8)) & 1 for i in range(modules * modules)]
    size = modules * scale
    rows = bytearray()
    for y in range(size):
        rows.append(0)
        my = y // scale
        for x in range(size):
            rows.append(0 if bits[my * modules + x // scale] else 255)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


class InProcessTransport(BaseAdapter):
    """A requests transport that hands each request to the sandbox WSGI app without a socket."""

    def __init__(self, wsgi_app: Flask):
        super().__init__()
        self.client = Client(wsgi_app)

    def send(self, request: requests.PreparedRequest, **kwargs) -> requests.Response:
        url = urlsplit(request.url)
        body = request.body.encode() if isinstance(request.body, str) else request.body
        answer = self.client.open(
            path=url.path, query_string=url.query, method=request.method, headers=dict(request.headers), data=body
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response._content = answer.get_data()
        response.headers = CaseInsensitiveDict(answer.headers)
        response.encoding = answer.mimetype_params.get("charset", "utf-8")
        response.url = request.url
        response.request = request
        response.reason = answer.status.partition(" ")[2]
        return response

    def close(self) -> None:
        pass


def mount_in_process(session: requests.Session, prefix: str, main_app: Flask) -> None:
    """Route every request under `prefix` on `session` to this app's sandbox."""
    sandbox = main_app.extensions.get("wechat_sandbox")
    if sandbox is None:
        sandbox = main_app.extensions["wechat_sandbox"] = create_sandbox_app(main_app)
    session.mount(prefix, InProcessTransport(sandbox))
