"""Where torch runs: the device, the number of CPU threads, and whether it computes bfloat16
natively."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

__all__ = ["native_bf16", "resolve_device", "set_threads"]


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


@functools.cache
def native_bf16(device_type: str = "cpu") -> str | None:
    """What computes bfloat16 natively on ``device_type`` (``cpu`` or ``cuda``): ``AMX``,
    ``AVX512-BF16`` or ``CUDA``; None where bfloat16 would be emulated (slower than float32).

    The CPU's units as torch (oneDNN) reports them, else as ``/proc/cpuinfo`` lists them. Asked
    once per process (well under a millisecond).
    """
    if device_type == "cuda":
        return "CUDA" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
    cpu = torch.cpu
    reported = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported",
                                                       "_is_avx512_bf16_supported")]  # fmt: skip
    if all(callable(ask) for ask in reported):
        amx, avx512_bf16 = (bool(ask()) for ask in reported)
    else:  # a torch without the private probes
        flags = _cpuinfo_flags()
        amx, avx512_bf16 = "amx_bf16" in flags, "avx512_bf16" in flags
    return "AMX" if amx else "AVX512-BF16" if avx512_bf16 else None


def _cpuinfo_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU feature flags Linux lists (empty elsewhere)."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags")
            for flag in line.split(":", 1)[1].split()}  # fmt: skip
