"""Channel adapters: each turns one rendered payload into an Outcome, never raising for WeChat's answers.

The rule that keeps messages exactly once: a failure is `failed` (retried) only when the message surely did
not reach WeChat (the connection was never made, or WeChat answered with an error). When the request may have
left and no answer came, the outcome is `unknown`, which nothing re-sends automatically.
"""

import hashlib
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from wechatpy.exceptions import WeChatClientException

from app.core.redis import key
from app.wechat import service as wechat

ROBOT = "wecom_webhook"
CUSTOMER_GROUP = "wecom_customer_group"
SANDBOX = "sandbox"  # recorded for the group's sandbox-messages view instead of being sent
ROBOT_LIMIT = 20  # messages per robot…
ROBOT_WINDOW_MS = 60_000  # …per sliding minute (WeCom answers 45009 beyond it)
ROBOT_COOLDOWN_MS = 60_000  # after a 45009 the robot rests a full window
RATE_LIMITED = 45009
# Robot errcodes that no retry can fix: bad or removed webhook key, bad message type, empty or oversize content.
ROBOT_PERMANENT = {93000, 93004, 40008, 44004, 40058}
# add_msg_template errcodes that no retry can fix: bad sender, not a customer contact, no permission.
GROUPMSG_PERMANENT = {40003, 41048, 48002, 60011, 60111, 84061, 84074}

# Sliding-window log: never more than LIMIT sends in any WINDOW, so the robot's own limit is never hit.
# Returns 0 when a send may go now (and records it), else milliseconds to wait.
_ROBOT_TAKE = """
local now = redis.call('time')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local cool = redis.call('pttl', KEYS[2])
if cool > 0 then return cool end
redis.call('zremrangebyscore', KEYS[1], 0, now_ms - tonumber(ARGV[2]))
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('zadd', KEYS[1], now_ms, ARGV[3])
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 0
end
local oldest = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + tonumber(ARGV[2]) - now_ms)
"""


@dataclass(frozen=True)
class Outcome:
    state: str  # sent, submitted, failed, dead, unknown, skipped or deferred (rate limited: back to pending)
    external_id: str | None = None
    error_code: str | None = None
    error_message: str = ""
    retry_after_ms: int = 0


def robot_id(webhook_key: str) -> str:
    """A stable name for a robot that does not reveal its key (Redis keys, logs)."""
    return hashlib.sha256(webhook_key.encode()).hexdigest()[:20]


class RobotLimiter:
    def __init__(self, redis):
        self.redis = redis
        self._take = redis.register_script(_ROBOT_TAKE)

    def take_many(self, robots: list[str]) -> list[int]:
        """Try to take a send slot for each robot (in order); 0 = go, else ms to wait."""
        pipe = self.redis.pipeline(transaction=False)
        for i, robot in enumerate(robots):
            self._take(
                keys=[key("robot", robot, "sent"), key("robot", robot, "cooldown")],
                args=[ROBOT_LIMIT, ROBOT_WINDOW_MS, f"{time.time_ns()}:{i}"],
                client=pipe,
            )
        return [int(v) for v in pipe.execute()] if robots else []

    def cool_down(self, robot: str) -> None:
        self.redis.set(key("robot", robot, "cooldown"), 1, px=ROBOT_COOLDOWN_MS)


def new_http_session(pool_size: int) -> requests.Session:
    """A session for robot sends: `pool_size` connections, no retries (a retry could deliver twice)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    wechat.serve_from_sandbox(session)
    return session


def _never_connected(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError) or isinstance(exc.args[0] if exc.args else None, NewConnectionError)


def send_robot(session: requests.Session, *, url: str, webhook_key: str, payload: dict, timeout: float) -> Outcome:
    """POST one message to a WeCom group robot."""
    try:
        response = session.post(url, params={"key": webhook_key}, json=payload, timeout=timeout)
    except requests.RequestException as exc:
        if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
            return Outcome("failed", error_code="unreachable", error_message=type(exc).__name__)
        return Outcome(
            "unknown", error_code="no_answer", error_message=f"{type(exc).__name__}: the message may have been sent"
        )
    if response.status_code >= 500:
        return Outcome("failed", error_code=f"http_{response.status_code}", error_message=response.reason or "")
    try:
        body = response.json()
        errcode = int(body.get("errcode", -1))
    except (ValueError, AttributeError, TypeError):
        return Outcome(
            "unknown", error_code="bad_answer", error_message=f"HTTP {response.status_code} without a WeCom answer"
        )
    if errcode == 0:
        return Outcome("sent")
    message = str(body.get("errmsg", ""))[:500]
    if errcode == RATE_LIMITED:
        return Outcome("deferred", error_code=str(errcode), error_message=message, retry_after_ms=ROBOT_COOLDOWN_MS)
    return Outcome("dead" if errcode in ROBOT_PERMANENT else "failed", error_code=str(errcode), error_message=message)


def send_customer_group(*, payload: dict) -> Outcome:
    """Create the mass-message task in WeCom; the host still has to confirm it (state `submitted`)."""
    try:
        result = wechat.add_group_mass_message(payload)
    except WeChatClientException as exc:
        errcode = exc.errcode
        if errcode is None:
            return Outcome("failed", error_code="http_error", error_message=str(exc)[:500])
        return Outcome(
            "dead" if errcode in GROUPMSG_PERMANENT else "failed",
            error_code=str(errcode),
            error_message=str(exc.errmsg)[:500],
        )
    except requests.RequestException as exc:
        if isinstance(exc, requests.ConnectionError) and _never_connected(exc):
            return Outcome("failed", error_code="unreachable", error_message=type(exc).__name__)
        return Outcome(
            "unknown", error_code="no_answer", error_message=f"{type(exc).__name__}: the task may have been created"
        )
    if result.get("fail_list"):
        return Outcome(
            "dead",
            error_code="chat_unavailable",
            error_message="WeCom refused the group: " + ",".join(result["fail_list"]),
        )
    return Outcome("submitted", external_id=result.get("msgid"))
