"""BackendCache: bounded, never answers with a wrong value, and evicts the least recently used."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepagents_daytona.backend_cache import BackendCache

_ops = st.lists(
    st.tuples(st.sampled_from(["put", "get", "pop"]), st.integers(0, 30), st.integers()),
    max_size=300,
)


@given(max_entries=st.integers(1, 12), ops=_ops)
def test_never_over_its_bound_and_never_a_wrong_value(max_entries: int, ops: list[tuple[str, int, int]]) -> None:
    cache: BackendCache[int] = BackendCache(max_entries)
    latest: dict[str, int] = {}
    for op, number, value in ops:
        key = f"thread-{number}"
        if op == "put":
            cache.put(key, value)
            latest[key] = value
            assert cache.get(key) == value, "an insert must not evict its own entry"
        elif op == "get":
            assert cache.get(key) in (None, latest.get(key))
        else:
            cache.pop(key)
            latest.pop(key, None)
            assert cache.get(key) is None
        assert len(cache) <= max_entries


def test_entries_in_use_outlive_idle_ones() -> None:
    cache: BackendCache[str] = BackendCache(10)
    for i in range(10):
        cache.put(f"t{i}", f"backend {i}")
    cache.put("t10", "backend 10")  # over the bound: one sweep clears every flag, drops t0 and t1
    assert cache.get("t0") is None
    for i in (2, 3):
        assert cache.get(f"t{i}") == f"backend {i}"  # used since the sweep
    cache.put("t11", "backend 11")
    cache.put("t12", "backend 12")  # over again: the idle oldest go, the two in use stay
    assert cache.get("t2") == "backend 2" and cache.get("t3") == "backend 3"
    assert cache.get("t4") is None and cache.get("t5") is None
    assert cache.get("t12") == "backend 12"


def test_concurrent_inserts_and_hits_keep_the_bound() -> None:
    cache: BackendCache[int] = BackendCache(64)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(2000):
                cache.put(f"{offset}-{i}", i)
                value = cache.get(f"{offset}-{i // 2}")
                assert value in (None, i // 2)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert errors == []
    assert len(cache) <= 64


def test_a_cache_needs_room_for_one_entry() -> None:
    with pytest.raises(ValueError, match="max_entries must be at least 1"):
        BackendCache(0)
