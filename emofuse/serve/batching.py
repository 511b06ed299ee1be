"""Clips of concurrent requests classified together: a small dynamic batcher.

A forward pass over several clips costs much less than one pass per clip (shared overheads,
wider matrix products), so the service queues each request's decoded wave (or a live stream's
window job, or its new audio for voice activity detection) and lets each of ``workers`` threads
take what is waiting, up to ``max_batch`` items, after waiting at most ``wait_seconds`` for more
to arrive. With one client the wait is the only cost.

>>> import numpy as np
>>> batcher = Batcher(lambda waves: [w.sum() for w in waves], workers=1)
>>> float(batcher.submit(np.ones(3, np.float32)).result())
3.0
>>> batcher.close()
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, NamedTuple

__all__ = ["Batcher"]

_STOP = object()


class _Pending(NamedTuple):
    """An item submitted and the Future of its result."""

    item: Any
    future: Future


class Batcher:
    """``submit(item)`` -> a Future of ``predict(items)[i]``, run in batches by worker threads.

    ``predict``: items (e.g. waves) -> one result per item (e.g.
    ``EmotionRecognizer.predict_waves``); ``worker_init`` runs first in each worker thread
    (e.g. one torch thread each).
    """

    def __init__(
        self,
        predict: Callable[[list], Sequence],
        *,
        workers: int = 1,
        max_batch: int = 16,
        wait_seconds: float = 0.002,
        worker_init: Callable[[], None] | None = None,
    ) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError(f"workers and max_batch must be positive, got {workers}, {max_batch}")
        self._predict, self._max_batch, self._wait = predict, max_batch, wait_seconds
        self._waiting: queue.Queue[_Pending | object] = queue.Queue()  # object: _STOP
        self._threads = [
            threading.Thread(
                target=self._work, args=(worker_init,), daemon=True, name=f"emofuse-batcher-{i}"
            )
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, item: Any) -> Future:
        """A Future of ``item``'s result, set once its batch has run."""
        future: Future = Future()
        self._waiting.put(_Pending(item, future))
        return future

    def close(self) -> None:
        """Stop the workers after the items already submitted."""
        for _ in self._threads:
            self._waiting.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _work(self, worker_init: Callable[[], None] | None) -> None:
        if worker_init is not None:
            worker_init()
        while True:
            first = self._waiting.get()
            if first is _STOP:
                return
            batch, stop = [first], False
            deadline = time.monotonic() + self._wait
            while len(batch) < self._max_batch:
                try:
                    item = self._waiting.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Pending]) -> None:
        """Predict the items whose Future was not cancelled, in one call; set their results
        (or the error, on every one)."""
        kept = [pending for pending in batch if pending.future.set_running_or_notify_cancel()]
        if not kept:
            return
        futures = [pending.future for pending in kept]
        try:
            results = self._predict([pending.item for pending in kept])
        except BaseException as error:  # noqa: BLE001 - handed to every waiting request
            for future in futures:
                future.set_exception(error)
            return
        for future, result in zip(futures, results, strict=True):
            future.set_result(result)
