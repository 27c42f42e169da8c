"""The manager's memory cache: thread -> backend, bounded, with lock-free hits.

A long-lived server must not keep a backend (about 12-17 KB with its SDK objects) for every
thread it ever served, so the cache holds at most `max_entries`. Eviction is CLOCK (second
chance): an insert or a hit sets the entry's `used` flag, a hit with no lock and no reordering.
When an insert takes the cache over its bound, a sweep under a lock drops the oldest entries
whose flag is clear, clearing set flags on the way, until a tenth of the room is free. An
evicted thread costs one get-by-name on its next call, and nothing else.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

V = TypeVar("V")


class _Entry(Generic[V]):
    __slots__ = ("used", "value")

    def __init__(self, value: V) -> None:
        self.value = value
        self.used = True  # a new entry gets its second chance too, so its own insert cannot evict it


class BackendCache(Generic[V]):
    """A bounded map with approximately least-recently-used eviction; safe across OS threads."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            msg = f"max_entries must be at least 1, got {max_entries}"
            raise ValueError(msg)
        self.max_entries = max_entries
        self._entries: dict[str, _Entry[V]] = {}
        self._insert_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.used = True
        return entry.value

    def put(self, key: str, value: V) -> None:
        with self._insert_lock:
            self._entries[key] = _Entry(value)
            if len(self._entries) > self.max_entries:
                self._sweep()

    def pop(self, key: str) -> None:
        self._entries.pop(key, None)

    def _sweep(self) -> None:
        """Oldest first: a used entry gets a second chance, an unused one goes. Should hits set
        every flag again between the two passes, the oldest go regardless."""
        target = max(1, self.max_entries - max(1, self.max_entries // 10))
        for _ in range(2):
            for key, entry in list(self._entries.items()):
                if len(self._entries) <= target:
                    return
                if entry.used:
                    entry.used = False
                elif self._entries.get(key) is entry:
                    self._entries.pop(key, None)
        for key in list(self._entries)[: len(self._entries) - target]:
            self._entries.pop(key, None)
