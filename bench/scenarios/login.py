"""Sandbox logins through gunicorn, against /healthz measured in the same run.

Each request exchanges a sandbox code through wechatpy (token cached in Redis), loads the user and roles,
records the login and writes a session row: one write transaction of five statements per login, where a
trivial endpoint touches nothing. 2,000 distinct users are cycled. The target, 0.1, sits under the 0.20
that a single-statement SQL endpoint reached on this kind of machine (NOTES.md), since a login makes five.
"""

LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"code":"sandbox:bench%d"}', counter % 2000)
  return wrk.format("POST", "/api/v1/auth/login", {["Content-Type"] = "application/json"}, body)
end
"""
TARGET_RATIO = 0.1


def run(ctx) -> list[dict]:
    ctx.wrk("/api/v1/auth/login", duration=3, lua=LUA)  # creates most users and warms the token cache
    result = ctx.wrk("/api/v1/auth/login", duration=10, lua=LUA)
    return [
        ctx.line(
            "login",
            result.rps,
            "logins/s",
            ctx.healthz.rps,
            TARGET_RATIO,
            ok=None if result.non2xx == 0 and result.socket_errors == 0 else False,
            p99_ms=result.p99_ms,
            healthz_p99_ms=ctx.healthz.p99_ms,
            errors=result.non2xx + result.socket_errors,
            cpu_us_per_request=result.cpu_us,
            per_web_core=result.per_web_core(),
        )
    ]
