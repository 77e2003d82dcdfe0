"""The UGC feed and product search over 1,000,000 products and 100,000 member posts, against /healthz.

Setup streams generated rows into PostgreSQL with COPY (products with their search tokens from the catalog's
own tokenizer, 2,000 authors, posts, their product links) and VACUUMs (ANALYZE). Measured, each for 10 s with wrk -c16 through gunicorn:

- feed_first_page: GET /api/v1/member-posts — what the mini-program opens; served from the short feed cache
  (CONTENT_FEED_CACHE_SECONDS) after the first miss, as in production.
- feed_mix: 600 distinct feed pages cycled (every age band × newest/popular, 300 product feeds, 200 deep
  newest pages by real cursors), still through the cache.
- feed_uncached: the same mix on a second gunicorn with the caches switched off: the SQL cost of a page
  (keyset scan, product cards, JSON).
- product_search: GET /api/v1/products cycling 24 keywords of the generated titles (substring match, served by
  a walk of the sort order's index or the search-token GIN index), through the search page cache
  (CATALOG_SEARCH_CACHE_SECONDS) as in production; product_search_uncached: the same on the second gunicorn.

Targets: ≥ 0.45 × /healthz for the feed and product search (the issue's figure); p99 reported on each line.
The uncached lines are reported against the same target so the cost without the caches stays visible.
"""

import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import requests

from bench.harness import free_port, wait_ready

PRODUCTS = 1_000_000
POSTS = 100_000
AUTHORS = 2_000
TARGET_RATIO = 0.45
WORDS = [
    "牙刷",
    "湿巾",
    "奶瓶",
    "纸尿裤",
    "辅食",
    "米粉",
    "积木",
    "绘本",
    "安全座椅",
    "推车",
    "睡袋",
    "围兜",
    "水杯",
    "洗发水",
    "面霜",
    "爬行垫",
    "保温杯",
    "磨牙棒",
    "牙膏",
    "防晒",
    "雨衣",
    "拼图",
    "彩笔",
    "书包",
]
ADJECTIVES = ["儿童", "婴儿", "宝宝", "软毛", "有机", "便携", "加厚", "卡通", "无香", "大容量"]
BANDS = {"pregnancy": (-10, -1), "0-6m": (0, 5), "6-12m": (6, 11), "1-3y": (12, 35), "3-6y": (36, 71), "6y+": (72, 216)}


def _copy(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def generate(ctx) -> list[int]:
    """Fill the bench database; returns the ids of products that posts link to."""
    from app.catalog.tokens import search_tokens
    from app.core.db import db

    rng = random.Random(6)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.monotonic()
    with ctx.app.app_context():
        raw = db.engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()

            def products():
                for i in range(PRODUCTS):
                    title, merchant = f"{rng.choice(ADJECTIVES)}{rng.choice(WORDS)} {i % 997}号", f"店铺{i % 5000}"
                    yield (
                        "union",
                        f"B{i}",
                        title,
                        "",
                        json.dumps([f"https://img.example/{i}.jpg"]),
                        500 + (i * 37) % 50000,
                        1000 + i % 2000,
                        merchant,
                        False,
                        True,
                        base + timedelta(seconds=i),
                        base + timedelta(seconds=i),
                        search_tokens(title, merchant),
                    )

            _copy(
                cur,
                "products",
                [
                    "source",
                    "external_id",
                    "title",
                    "description",
                    "images",
                    "price_fen",
                    "commission_rate_bp",
                    "merchant",
                    "is_breastmilk_substitute",
                    "is_active",
                    "created_at",
                    "updated_at",
                    "search_tokens",
                ],
                products(),
            )
            _copy(
                cur,
                "users",
                ["openid", "nickname", "invite_code", "created_at"],
                ((f"bench-author-{i}", f"妈妈{i}", f"BA{i:06d}", base) for i in range(AUTHORS)),
            )
            raw.commit()
            cur.execute("SELECT min(id) FROM products")
            first_product = cur.fetchone()[0]
            cur.execute("SELECT min(id) FROM users WHERE openid LIKE 'bench-author-%'")
            first_author = cur.fetchone()[0]
            linked = [first_product + rng.randrange(PRODUCTS) for _ in range(20_000)]
            bands = list(BANDS.values())
            links: list[list[int]] = []

            def posts():
                for i in range(POSTS):
                    low, high = bands[i % len(bands)]
                    at = base + timedelta(minutes=i)
                    views = rng.randrange(500)
                    chosen = list(dict.fromkeys(rng.choice(linked) for _ in range(1 + i % 3)))
                    links.append(chosen)
                    yield (
                        first_author + i % AUTHORS,
                        f"<p>分享第{i}条：{rng.choice(WORDS)}真好用</p>",
                        json.dumps([f"https://img.example/post/{i}/{k}.jpg" for k in range(i % 4)]),
                        json.dumps(chosen),
                        low,
                        high,
                        "published",
                        False,
                        0,
                        0,
                        views,
                        views,
                        "2026-01",
                        at,
                        at,
                        at,
                    )

            _copy(
                cur,
                "member_posts",
                [
                    "author_id",
                    "text",
                    "image_urls",
                    "product_ids",
                    "min_age_months",
                    "max_age_months",
                    "status",
                    "hidden",
                    "report_count",
                    "cleared_report_count",
                    "view_count",
                    "score",
                    "license_version",
                    "created_at",
                    "updated_at",
                    "published_at",
                ],
                posts(),
            )
            cur.execute("SELECT min(id) FROM member_posts")
            first_post = cur.fetchone()[0]

            _copy(
                cur,
                "member_post_products",
                ["post_id", "product_id", "position"],
                (
                    (first_post + i, product_id, position)
                    for i, chosen in enumerate(links)
                    for position, product_id in enumerate(chosen)
                ),
            )
            raw.commit()
            # As autovacuum would after a bulk load, but before measuring: visibility maps, the GIN pending list.
            raw.driver_connection.autocommit = True
            cur.execute("VACUUM (ANALYZE)")
        finally:
            raw.close()
    print(
        f"bench: feed: generated {PRODUCTS} products and {POSTS} posts in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return linked


def _cycle_lua(paths: list[str]) -> str:
    listed = ",\n".join(json.dumps(p) for p in paths)
    return f"""
paths = {{{listed}}}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1])
end
"""


def _deep_pages(base_url: str, count: int) -> list[str]:
    paths, cursor = [], None
    while len(paths) < count:
        path = "/api/v1/member-posts?limit=20" + (f"&cursor={cursor}" if cursor else "")
        paths.append(path)
        cursor = requests.get(base_url + path, timeout=30).json()["next_cursor"]
    return paths


def run(ctx) -> list[dict]:
    rng = random.Random(7)
    linked = generate(ctx)
    mix = [
        f"/api/v1/member-posts?age_band={quote(band)}&sort={sort}" for band in BANDS for sort in ("newest", "popular")
    ]
    mix += [f"/api/v1/member-posts?product_id={pid}" for pid in rng.sample(sorted(set(linked)), 300)]
    mix += _deep_pages(ctx.base_url, 200)
    rng.shuffle(mix)
    search = [f"/api/v1/products?q={quote(word)}&limit=20" for word in WORDS]

    def measure(name: str, path: str, lua: str = "") -> dict:
        ctx.wrk(path, duration=3, lua=lua)
        result = ctx.wrk(path, duration=10, lua=lua)
        ok = None if result.non2xx == 0 and result.socket_errors == 0 else False
        return ctx.line(
            name,
            result.rps,
            "requests/s",
            ctx.healthz.rps,
            TARGET_RATIO,
            ok=ok,
            p99_ms=result.p99_ms,
            p50_ms=result.p50_ms,
            healthz_p99_ms=ctx.healthz.p99_ms,
            non2xx=result.non2xx,
            socket_errors=result.socket_errors,
            cpu_us_per_request=result.cpu_us,
            per_web_core=result.per_web_core(),
        )

    lines = [
        measure("feed_first_page", "/api/v1/member-posts"),
        measure("feed_mix", "/api/v1/member-posts", _cycle_lua(mix)),
        measure("product_search", "/api/v1/products", _cycle_lua(search)),
    ]
    port = free_port()
    uncached = ctx.spawn(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
        name="gunicorn-uncached",
        env={"PORT": str(port), "CONTENT_FEED_CACHE_SECONDS": "0", "CATALOG_SEARCH_CACHE_SECONDS": "0"},
    )
    cached_base, ctx.base_url = ctx.base_url, f"http://127.0.0.1:{port}"
    try:
        wait_ready(ctx.base_url)
        lines.append(measure("feed_uncached", "/api/v1/member-posts", _cycle_lua(mix)))
        lines.append(measure("product_search_uncached", "/api/v1/products", _cycle_lua(search)))
    finally:
        ctx.stop(uncached)
        ctx.base_url = cached_base
    return lines
