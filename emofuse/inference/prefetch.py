"""Work ahead of the consumer: ``fn`` applied to items by one background thread, in order.

Reading and decoding audio (soundfile, soxr) and torch's operators release the GIL, so a
file's reading overlaps the model's forward pass on another core.

>>> list(prefetch(lambda x: x * x, [(1,), (2,), (3,)], depth=2))
[1, 4, 9]
>>> list(prefetch(lambda x: x, [(5,), (1,)], depth=8, weigh=lambda x: x, budget=2))
[5, 1]
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["prefetch"]

T = TypeVar("T")
_DONE = object()


def prefetch(
    fn: Callable[..., T],
    items: Iterable[tuple],
    depth: int,
    *,
    weigh: Callable[[T], int] | None = None,
    budget: int = 0,
) -> Iterator[T]:
    """``fn(*item)`` for each item, in order, computed at most ``depth`` results ahead and, with
    ``weigh``, at most ``budget`` of their weight (e.g. samples) waiting, one result whatever
    its weight (and the next one computed waits for room): a folder of long files is not read
    32 files ahead.

    An exception raised by ``fn`` is raised here, at its place in the order; closing (or
    abandoning) the iterator stops the thread after the item it is working on.
    """
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    room = threading.Condition()
    ahead = [0]  # weight of the results computed and not yet taken

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                results.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reserve(weight: int) -> None:
        with room:
            while ahead[0] and ahead[0] + weight > budget and not stop.is_set():
                room.wait(0.1)
            ahead[0] += weight

    def work() -> None:
        try:
            for item in items:
                value = fn(*item)
                weight = weigh(value) if weigh is not None else 0
                reserve(weight)
                if stop.is_set() or not put((value, weight, None)):
                    return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            put((None, 0, error))
            return
        put((_DONE, 0, None))

    thread = threading.Thread(target=work, name="emofuse-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value, weight, error = results.get()
            if error is not None:
                raise error
            if value is _DONE:
                return
            with room:
                ahead[0] -= weight
                room.notify()
            yield value
    finally:
        stop.set()
        thread.join()
