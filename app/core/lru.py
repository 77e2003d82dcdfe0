"""Per-process caches of things that never change once read (parsed sessions, share codes, template facts).

Bounded per key: when full, the entry used least recently makes room, so a busy process keeps what it uses
(emptying a full cache wholesale would send every caller back to Redis or the database at once). Safe to
share between a process's threads.
"""

import threading
from collections.abc import Hashable
from typing import Any

from cachetools import LRUCache


class ProcessCache:
    """A thread-safe least-recently-used cache holding at most `size` entries."""

    def __init__(self, size: int) -> None:
        self._entries: LRUCache = LRUCache(maxsize=size)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The value kept under `key`, or None."""
        with self._lock:
            return self._entries.get(key)

    def put(self, key: Hashable, value: Any) -> Any:
        """Keep `value` under `key` (making room if full); returns it."""
        with self._lock:
            self._entries[key] = value
        return value

    def clear(self) -> None:
        """Forget everything (tests that change what was cached)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
