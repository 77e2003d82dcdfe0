"""Share-link redirects through gunicorn, against /healthz measured in the same run.

`GET /s/<code>` answers 302 from the worker's own copy of the link and hands the click to the worker's
write-behind buffer, which counts it in Redis within 50 ms (a Lua script: SET NX dedupe key, XADD to the
click stream; one call per batch). A worker's first click on a link makes that round trip itself. wrk
sends no cookies, so every request is a new visitor and every request is a click. The scheduler persists
the stream in batches while the load runs; afterwards the backlog is drained and the clicks in
PostgreSQL are compared with the clicks the stream received and with the redirects wrk got answered
(a request in flight when wrk stops may be counted without wrk seeing its answer, so at least those).
Target: redirects/s ÷ /healthz rps ≥ 0.65 with every click counted.
"""

import time

TARGET_RATIO = 0.65
CODES = 50

LUA = """
local codes = {%(codes)s}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/s/" .. codes[(counter %% #codes) + 1])
end
"""


def _links(ctx) -> list[str]:
    from app.accounts import service as accounts
    from app.affiliate import service as affiliate
    from app.catalog import service as catalog
    from app.core.db import use_case

    with ctx.app.app_context(), use_case():
        sharer = accounts.ensure_user(openid="bench-sharer", nickname="分享者")
        product = catalog.create_product(
            source="union",
            external_id="bench-click",
            fields={
                "title": "儿童电动牙刷",
                "price_fen": 5900,
                "commission_rate_bp": 1500,
                "link_url": "https://union.example/item/1",
            },
        )
        return [
            affiliate.create_share_link(sharer_id=sharer.id, product_id=product.id, group_id=g).code
            for g in range(1, CODES + 1)
        ]


def _counted(ctx) -> tuple[int, int, int]:
    from sqlalchemy import func, select

    from app.affiliate import clicks
    from app.affiliate import service as affiliate
    from app.affiliate.models import Click
    from app.core.db import db
    from app.core.redis import get_redis, key

    with ctx.app.app_context():
        deadline = time.monotonic() + 120
        while clicks.backlog() and time.monotonic() < deadline:
            affiliate.persist_clicks()
        received = (
            int(dict(get_redis().xinfo_stream(key(clicks.STREAM))).get("entries-added", -1))
            if get_redis().exists(key(clicks.STREAM))
            else 0
        )
        return db.session.scalar(select(func.count()).select_from(Click)), clicks.backlog(), received


def run(ctx) -> list[dict]:
    codes = _links(ctx)
    lua = LUA % {"codes": ",".join(f'"{c}"' for c in codes)}
    scheduler = ctx.start_scheduler()
    warm = ctx.wrk("/s/" + codes[0], duration=3, lua=lua)  # warm-up (its clicks count too)
    result = ctx.wrk("/s/" + codes[0], duration=10, lua=lua)
    redirected = warm.requests + result.requests
    ctx.stop(scheduler)
    persisted, backlog, received = _counted(ctx)
    # Redis 6.2 has no entries-added; there the stream is empty once drained and persisted is the count.
    every_click = backlog == 0 and (received < 0 or persisted == received) and persisted >= redirected
    return [
        ctx.line(
            "click",
            result.rps,
            "redirects/s",
            ctx.healthz.rps,
            TARGET_RATIO,
            ok=None if every_click and result.socket_errors == 0 and result.non2xx == 0 else False,
            p99_ms=result.p99_ms,
            healthz_p99_ms=ctx.healthz.p99_ms,
            clicks_persisted=persisted,
            clicks_received=received,
            redirects_answered=redirected,
            backlog=backlog,
            errors=result.non2xx + result.socket_errors,
            cpu_us_per_request=result.cpu_us,
            per_web_core=result.per_web_core(),
        )
    ]
