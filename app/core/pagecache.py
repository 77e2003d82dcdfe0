"""Rendered pages kept briefly in Redis, each stamped with the generation numbers it was rendered under.

A change bumps the generations of the pages it affects (after its commit), and a page is served from the
cache only while every generation it depends on still holds the number it was stamped with. The stamp is
read before rendering, so a change committed during a render leaves that render stale at once. The time to
live bounds only what no generation tracks (view counts and the like) and the memory.

A page is stored under the exact query string of the request that rendered it (`page_key`), and stored only
once that request's arguments were validated and its page rendered. So `served_from_cache` can answer a
request whose query string is byte for byte one already served, before any argument parsing: one Redis round
trip (a script checks the stamped generations and returns the stored JSON bytes), and nothing re-encoded.
Only pages that are the same for every caller may be cached this way.
"""

import functools
from collections.abc import Callable

from flask import current_app, request

from app.core.redis import get_redis, key

# A stored page is "<generation> <number> <generation> <number> ...\n<body>"; generation keys hold no spaces.
_CURRENT_PAGE = """
local page = redis.call('GET', KEYS[1])
if not page then return false end
local cut = string.find(page, '\\n', 1, true)
for generation, number in string.gmatch(string.sub(page, 1, cut - 1), '(%S+) (%d+)') do
  if (redis.call('GET', generation) or '0') ~= number then return false end
end
return string.sub(page, cut + 1)
"""


def page_key(namespace: str) -> bytes:
    """The cache key of this request's page: its route's namespace and its query string exactly as sent."""
    return f"{key('page', namespace)}?".encode() + request.query_string


def _current(cache_key: bytes) -> bytes | None:
    redis = get_redis()
    script = current_app.extensions.get("pagecache_script")
    if script is None:
        script = current_app.extensions["pagecache_script"] = redis.register_script(_CURRENT_PAGE)
    return script(keys=[cache_key])


def served_from_cache(*, namespace: str, ttl_setting: str) -> Callable:
    """Answer the view from the page cached under this request's `page_key`, when there is a current one.

    Put it above the argument parsing; the view's service stores pages with `cached(cache_key=page_key(...))`.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if current_app.config[ttl_setting] > 0:
                body = _current(page_key(namespace))
                if body is not None:
                    return current_app.response_class(body, mimetype="application/json")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def cached(*, cache_key: bytes | str, generations: list[str], ttl: int, render: Callable[[], str]) -> str:
    """`render()`, stored for `ttl` seconds (0 caches nothing) stamped with `generations` as read before it."""
    if ttl <= 0:
        return render()
    if any(" " in generation or "\n" in generation for generation in generations):
        raise ValueError(f"generation keys cannot hold spaces or newlines: {generations}")
    redis = get_redis()
    numbers = redis.mget(*generations)
    stamp = " ".join(f"{generation} {int(number or 0)}" for generation, number in zip(generations, numbers))
    body = render()
    redis.set(cache_key, f"{stamp}\n".encode() + body.encode(), ex=ttl)
    return body


def bump(generations: list[str]) -> None:
    """Make every cached page that depends on one of `generations` stale; call after committing the change."""
    pipe = get_redis().pipeline(transaction=False)
    for generation in generations:
        pipe.incr(generation)
    pipe.execute()
