"""Rendered pages kept briefly in Redis, each stamped with the generation numbers it was rendered under.

A change bumps the generations of the pages it affects (after its commit), and a page is served from the
cache only while every generation it depends on still holds the number it was stamped with. The stamp is
read before rendering, so a change committed during a render leaves that render stale at once. The time to
live bounds only what no generation tracks (view counts and the like) and the memory.
"""
from typing import Callable

from app.core.redis import get_redis


def cached(*, cache_key: str, generations: list[str], ttl: int, render: Callable[[], str]) -> str:
    """The cached copy of a page while current, else `render()` (stored for `ttl` seconds; 0 caches nothing)."""
    if ttl <= 0:
        return render()
    redis = get_redis()
    *current, found = redis.mget(*generations, cache_key)  # one round trip
    stamp = ",".join((number or b"0").decode() for number in current)
    if found is not None:
        found_stamp, _, body = found.decode().partition("|")
        if found_stamp == stamp:
            return body
    body = render()
    redis.set(cache_key, f"{stamp}|{body}", ex=ttl)
    return body


def bump(generations: list[str]) -> None:
    """Make every cached page that depends on one of `generations` stale; call after committing the change."""
    pipe = get_redis().pipeline(transaction=False)
    for generation in generations:
        pipe.incr(generation)
    pipe.execute()
