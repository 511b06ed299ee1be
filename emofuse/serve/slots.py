"""A count of things in use against a limit: the service's uploads in progress, its open live
streams.

>>> slots = Slots(1)
>>> slots.take(), slots.take(), slots.used
(True, False, 1)
>>> slots.release()
>>> slots.used
0
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Slots"]


@dataclass
class Slots:
    """At most ``limit`` in use at once; ``used`` now. Touched only on the event loop (no
    lock): take one before the work, release it after."""

    limit: int
    used: int = 0

    def take(self) -> bool:
        """Whether a slot was free (it is now taken)."""
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def release(self) -> None:
        """Free a slot taken with :meth:`take`."""
        self.used -= 1
