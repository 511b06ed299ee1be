"""Old spellings that keep working for one release, with a warning that names the new one."""

from __future__ import annotations

import warnings
from collections.abc import MutableMapping
from typing import Any

__all__ = ["renamed_keyword"]


def renamed_keyword(
    options: MutableMapping[str, Any], old: str, new: str, value: Any, *, last: bool = False
) -> Any:
    """``value`` of keyword ``new``, or (with a ``DeprecationWarning``) that of ``old`` popped
    from ``options`` (a function's ``**options``); both given is a ``TypeError``, and so is
    any other keyword left in ``options`` once the ``last`` old name is taken.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True):
    ...     renamed_keyword({"window": 2.0}, "window", "window_seconds", None)
    2.0
    """
    if old in options:
        if value is not None:
            raise TypeError(f"give {new}= only ({old}= is its old name)")
        warnings.warn(f"{old}= is deprecated; use {new}= (the same value)", DeprecationWarning,
                      stacklevel=3)  # fmt: skip
        value = options.pop(old)
    if last and options:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(options)}")
    return value
