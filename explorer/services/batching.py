"""Batched model calls: concurrent calls for the same model (and CAM method) share one forward pass.

A call joins the open batch of its key (the model, the CAM method). The batch's first call, its leader, waits for a
model worker (``Resources.worker``) while later calls join, or for ``wait_s`` at most when the batch is not full;
then it closes the batch, runs it in one forward pass and hands each call its own answer. Under load the batch is
what arrived while the previous one ran; a lone call waits for nothing (``wait_s`` 0, the default: there is no
window to wait out on a CPU, where a batch is barely cheaper per photo; on a GPU a few milliseconds fill it).

One call's failure is its own: when a batch raises, each of its calls runs alone, and only the one that fails
again gets the error. A call made while its thread already holds a worker (a use case running another) runs alone
at once: it must not wait for a leader that waits for that worker.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from explorer.services.workers import holding

DEFAULT_MAX_BATCH = 8


@dataclass
class _Batch:
    items: list = field(default_factory=list)
    results: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class Batcher:
    """Gathers concurrent ``call(key, item, run)`` of one key into ``run(items) -> results`` (one result per item,
    in order; the leader's ``run``: calls of one key pass the same), at most ``max_batch`` items a run; ``slot``:
    the context manager a run holds (a model worker)."""

    def __init__(self, slot: Callable[[], Any], max_batch: int = DEFAULT_MAX_BATCH, wait_s: float = 0.0):
        if max_batch < 1 or wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and wait_s >= 0, not {max_batch} and {wait_s}")
        self.slot, self.max_batch, self.wait_s = slot, max_batch, wait_s
        self._open: dict[Hashable, _Batch] = {}
        self._lock = threading.Lock()
        self.sizes: deque[int] = deque(maxlen=4096)  # the latest batches' sizes (for benchmarks and tests)
        self._pending = 0  # calls in batches not yet answered

    def call(self, key: Hashable, item: Any, run: Callable[[list], list]) -> Any:
        """``item``'s result, computed in a batch with the concurrent calls of the same ``key``; its error raised."""
        if holding():  # inside another call's worker: alone, now
            self.sizes.append(1)
            return run([item])[0]
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if leader:
                batch = self._open[key] = _Batch()
            index = len(batch.items)
            batch.items.append(item)
            self._pending += 1
            if len(batch.items) >= self.max_batch:
                self._close(key, batch)
        if leader:
            if self.wait_s > 0:
                batch.full.wait(self.wait_s)
            with self.slot():
                with self._lock:
                    self._close(key, batch)
                self._run(batch, run)
        else:
            batch.done.wait()
        if batch.errors[index] is not None:
            raise batch.errors[index]
        return batch.results[index]

    def waiting(self, key: Hashable) -> int:
        """How many calls the open batch of ``key`` holds (0: none open)."""
        with self._lock:
            batch = self._open.get(key)
            return len(batch.items) if batch is not None else 0

    def pending(self) -> int:
        """How many calls wait in batches (open, or closed and not yet answered)."""
        with self._lock:
            return self._pending

    def _close(self, key: Hashable, batch: _Batch) -> None:
        """No call joins ``batch`` any more (under the lock)."""
        if self._open.get(key) is batch:
            del self._open[key]
        batch.full.set()

    def _run(self, batch: _Batch, run: Callable[[list], list]) -> None:
        items = batch.items
        self.sizes.append(len(items))
        try:
            results = run(items)
            if len(results) != len(items):
                raise RuntimeError(f"a batch of {len(items)} gave {len(results)} results")
            batch.results, batch.errors = list(results), [None] * len(items)
        except Exception as err:  # noqa: BLE001 (each call is run alone; only its own failure reaches it)
            if len(items) == 1:
                batch.results, batch.errors = [None], [err]
            else:
                outcomes = [_try_alone(run, item) for item in items]
                batch.results, batch.errors = [r for r, _ in outcomes], [e for _, e in outcomes]
        finally:
            with self._lock:
                self._pending -= len(items)
            batch.done.set()


def _try_alone(run: Callable[[list], list], item: Any) -> tuple[Any, BaseException | None]:
    try:
        return run([item])[0], None
    except Exception as err:  # noqa: BLE001 (handed to its caller)
        return None, err
