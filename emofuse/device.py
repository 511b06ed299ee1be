"""Where torch runs: the device and the number of CPU threads."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "set_threads", "fix_mmap_threshold"]

MMAP_THRESHOLD = 128 * 1024  # bytes: larger blocks get their own mapping, returned when freed


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cpu`` and ``cuda`` are taken as asked."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; expected auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(name)


def set_threads(n: int) -> None:
    """Use ``n`` torch CPU threads (0 leaves torch's default)."""
    if n < 0:
        raise ValueError(f"thread count must be >= 0, got {n}")
    if n:
        torch.set_num_threads(n)


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Keep glibc's malloc from growing the heap over thousands of differently sized buffers.

    glibc raises its mmap threshold each time a large block is freed, so later audio and
    tensor buffers come from the heap, which fragments: peak RSS grew with the number of files
    predicted. A fixed threshold keeps such buffers in their own mappings, returned to the
    system when freed. Returns False (and changes nothing) where glibc is not the allocator.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_mmap_threshold = -3  # from malloc.h
    return bool(mallopt(m_mmap_threshold, threshold))
