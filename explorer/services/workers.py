"""Model workers: N model calls served at once, each on its own copy of the models.

A model call registers forward hooks (the CAM layer's activations, the embedding) on the module it runs, so two
calls at once on one module would read each other's activations. Each worker therefore owns a full set of
classifiers: worker 0 the loaded ones, every other worker deep copies of their modules (labels, cards and taxonomy
are shared, read-only). A call takes a free worker for its duration (``slot``); a call made inside another call's
slot (identify -> scope gate -> routing) uses the same worker. With N workers torch gets cores / N threads each, so
N calls share the cores instead of each trying to use all of them.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import ctypes
import dataclasses
import functools
import logging
import os
import queue
import sys
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import torch

from explorer.models.classifier import Classifier

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger(__name__)
_CURRENT: contextvars.ContextVar[int | None] = contextvars.ContextVar("model_worker", default=None)


def replica(classifier: Classifier) -> Classifier:
    """The classifier with its own copy of the module (same weights, no shared hooks or buffers)."""
    return dataclasses.replace(classifier, module=copy.deepcopy(classifier.module))


def threads_per_worker(count: int, cores: int | None = None) -> int:
    """Torch threads for each of ``count`` workers: the cores split between them, at least one."""
    return max(1, (cores or os.cpu_count() or 1) // count)


class ModelWorkers:
    """``count`` sets of classifiers and the queue of the free ones."""

    def __init__(self, classifiers: dict[str, Classifier], count: int = 1):
        if count < 1:
            raise ValueError(f"model workers must be >= 1, not {count}")
        self.sets = [classifiers] + [{name: replica(c) for name, c in classifiers.items()} for _ in range(count - 1)]
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(count):
            self._free.put(index)

    @property
    def count(self) -> int:
        return len(self.sets)

    @contextlib.contextmanager
    def slot(self) -> Iterator[int]:
        """Hold a free worker (waiting for one) for the block; inside another slot, that same worker."""
        held = _CURRENT.get()
        if held is not None:
            yield held
            return
        index = self._free.get()
        token = _CURRENT.set(index)
        try:
            yield index
        finally:
            _CURRENT.reset(token)
            self._free.put(index)

    def classifiers(self) -> dict[str, Classifier]:
        """The classifiers of the worker this call holds (worker 0's outside any slot: read-only uses)."""
        held = _CURRENT.get()
        return self.sets[0 if held is None else held]


def model_workers(classifiers: dict[str, Classifier], count: int) -> ModelWorkers:
    """One worker: the loaded classifiers on every core (a slot is then the lock that lets batched calls take
    turns); more: the copies, and the cores shared."""
    workers = ModelWorkers(classifiers, count)
    if count > 1:
        log.info("%d model workers, %d torch threads each", count, share_cores(count))
    return workers


def holding() -> bool:
    """Whether this call already holds a model worker (it runs inside another call's slot)."""
    return _CURRENT.get() is not None


MALLOC_ARENAS = 2  # glibc malloc arenas for the server (mallopt's M_ARENA_MAX)
M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas(count: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``count`` unless ``MALLOC_ARENA_MAX`` is set (glibc then reads it itself): each
    thread that allocates otherwise gets its own arena, up to 8 per core, and the model queue's concurrent handlers
    (workers x max-batch of them) held the freed memory of theirs. Measured under 16 clients x 25 calls with
    batching: the server grew by 14-17 % with glibc's default, 5-12 % with 2 arenas, at the same throughput
    (benchmarks/bench_served.py). Call it before the threads start. Returns whether the cap was set (False off
    glibc)."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, count))


def share_cores(count: int) -> int:
    """Give torch cores / ``count`` threads per call (one process-wide setting); returns that number."""
    threads = threads_per_worker(count)
    if count > 1:
        torch.set_num_threads(threads)
    return threads


def holds_worker(service: Callable[P, R]) -> Callable[P, R]:
    """A service that runs models holds a model worker while it runs (``Resources.worker``): its first argument
    (or ``resources=``) is the Resources whose worker it takes."""

    @functools.wraps(service)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        resources = args[0] if args else kwargs["resources"]
        with resources.worker():
            return service(*args, **kwargs)

    return run
