"""Where torch runs: the device and the number of CPU threads."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "set_threads"]


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

