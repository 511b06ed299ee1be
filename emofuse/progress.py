"""Progress of long loops on stderr: a tqdm bar on a terminal, a few plain lines in a log.

A command run under ``nohup`` or in CI writes its progress to a file; tqdm's redraws would fill
it with thousands of carriage-return updates, so there it says ``desc: done/total`` about ten
times instead, and training says one line per epoch.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TypeVar

__all__ = ["EpochProgress", "progress"]

T = TypeVar("T")


def progress(items: Sequence[T], desc: str, unit: str = "file", lines: int = 10) -> Iterator[T]:
    """Yield ``items``, reporting progress on stderr: a bar on a terminal, else at most
    ``lines`` lines such as ``features: 120/240 files (3 s)``."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=desc, unit=unit, leave=False)
        return
    total, began = len(items), time.perf_counter()
    step = max(1, math.ceil(total / lines))
    for done, item in enumerate(items, 1):
        yield item
        if done % step == 0 or done == total:
            print(f"{desc}: {done}/{total} {unit}s ({time.perf_counter() - began:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip


class EpochProgress:
    """Training progress over epochs with loss, validation UA and the best so far: a tqdm bar
    on a terminal, else one line per epoch."""

    def __init__(self, total: int, initial: int) -> None:
        self.total, self.epoch, self.began = total, initial, time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="epochs", unit="epoch", leave=False)

    def update(self, loss: float, val_ua: float, best_ua: float) -> None:
        self.epoch += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", val_ua=f"{val_ua:.3f}", best=f"{best_ua:.3f}")
            return
        print(f"epoch {self.epoch}/{self.total}: loss {loss:.3f}, validation UA {val_ua:.3f} "
              f"(best {best_ua:.3f}), {time.perf_counter() - self.began:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
