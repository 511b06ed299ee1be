"""Work ahead of the consumer: ``fn`` applied to items by one background thread, in order.

Reading and decoding audio (soundfile, soxr) and torch's operators release the GIL, so a
file's reading overlaps the model's forward pass on another core.

>>> list(prefetch(lambda x: x * x, [(1,), (2,), (3,)], depth=2))
[1, 4, 9]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
_DONE = object()


def prefetch(fn: Callable[..., T], items: Iterable[tuple], depth: int) -> Iterator[T]:
    """``fn(*item)`` for each item, in order, computed at most ``depth`` results ahead.

    An exception raised by ``fn`` is raised here, at its place in the order; closing (or
    abandoning) the iterator stops the thread after the item it is working on.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                results.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if stop.is_set() or not put((fn(*item), None)):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            put((None, error))
            return
        put((_DONE, None))

    thread = threading.Thread(target=work, name="emofuse-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value, error = results.get()
            if error is not None:
                raise error
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        thread.join()
