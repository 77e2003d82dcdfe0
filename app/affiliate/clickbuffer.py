"""Write-behind for redirect clicks: the redirect hands its click to this process's buffer and answers at once.

One background thread per process sends whatever piled up since its last call in one Lua call (a group
commit). The thread is woken only by the first click after a quiet spell; from then on it sends every
linger time (50 ms by default) whatever came meanwhile, so a busy worker pays no per-click wake-up. The redirect therefore
waits on no network round trip, and under load one Redis call carries dozens of clicks. The script does
for each click what the synchronous path does (SET NX dedupe key, then XADD to the click stream), so a
batch retried after a lost reply adds nothing twice within the dedupe minute.

Nothing is lost on a restart: a normal exit (gunicorn's graceful stop and its quick stop both exit through
Python) sends what is left, and a Redis error keeps the clicks for the next try. What a kill -9 takes is the
clicks of the last moment only, those not yet handed to Redis, and the buffer never holds more than
`max_pending` (the oldest are dropped, and logged, should Redis stay away that long).
"""

import atexit
import logging
import threading
from collections import deque
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# KEYS: the stream, then one dedupe key per click. ARGV: dedupe seconds, then per click: link id, time (ms),
# buyer id, visitor, via. Returns how many clicks were counted.
_COUNT_BATCH = """
local counted = 0
for i = 2, #KEYS do
  local a = 2 + (i - 2) * 5
  if redis.call('set', KEYS[i], 1, 'NX', 'EX', ARGV[1]) then
    redis.call('xadd', KEYS[1], '*', 'k', ARGV[a], 't', ARGV[a + 1], 'b', ARGV[a + 2], 'v', ARGV[a + 3],
               'w', ARGV[a + 4])
    counted = counted + 1
  end
end
return counted
"""


@dataclass(frozen=True, slots=True)
class PendingClick:
    dedupe_key: str
    link_id: int
    at_ms: int
    buyer: str
    visitor: str
    via: str


class ClickBuffer:
    """A process's clicks on their way to Redis, sent by one thread in batches."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream_key: str,
        dedupe_seconds: int,
        linger_seconds: float = 0.01,
        batch_size: int = 500,
        max_pending: int = 100_000,
        retry_seconds: float = 0.5,
    ):
        self._redis = redis
        self._script = redis.register_script(_COUNT_BATCH)
        self._stream_key = stream_key
        self._dedupe_seconds = dedupe_seconds
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._retry_seconds = retry_seconds
        self._linger_seconds = linger_seconds
        self._pending: deque[PendingClick] = deque()
        self._wake = threading.Event()
        self._idle = False  # set by the thread while it waits for a first click; only then does add() wake it
        self._sending = threading.Lock()  # the thread and a final flush never send the same click twice
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="click-write-behind", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def add(self, click: PendingClick) -> None:
        """Queue a click; the thread sends it with whatever else is waiting."""
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            log.error("click buffer full (%d): Redis unreachable; dropped the oldest click", self._max_pending)
        self._pending.append(click)
        if self._idle:
            self._idle = False
            self._wake.set()

    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Send every queued click now; returns how many were counted (first in their minute)."""
        counted = 0
        with self._sending:
            while self._pending:
                batch = [self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))]
                try:
                    counted += self._send(batch)
                except RedisError:
                    self._pending.extendleft(reversed(batch))
                    raise
        return counted

    def close(self) -> None:
        """Stop the thread and send what is left (runs at interpreter exit)."""
        self._closed.set()
        self._wake.set()
        try:
            self.flush()
        except RedisError:
            log.exception("click buffer: %d clicks could not reach Redis at exit", len(self._pending))

    def _send(self, batch: list[PendingClick]) -> int:
        args: list = [self._dedupe_seconds]
        for click in batch:
            args += [click.link_id, click.at_ms, click.buyer, click.visitor, click.via]
        return int(self._script(keys=[self._stream_key, *(c.dedupe_key for c in batch)], args=args))

    def _run(self) -> None:
        while not self._closed.is_set():
            if not self._pending:
                self._idle = True
                if not self._pending:  # a click added before `_idle` was set would find nobody to wake it
                    self._wake.wait()
                self._idle = False
                self._wake.clear()
            self._closed.wait(self._linger_seconds)
            try:
                self.flush()
            except Exception:  # the thread must outlive any failure, or clicks would pile up unsent
                log.exception("click buffer: sending failed, %d clicks wait for the retry", len(self._pending))
                self._closed.wait(self._retry_seconds)
