"""The machine a result was computed on, as written into results files."""

from __future__ import annotations

import os
import platform

import torch

__all__ = ["machine_description"]


def machine_description() -> str:
    """Processor, thread count, torch version and device, e.g. ``'x86_64, 2 CPU threads, torch
    2.13.0+cpu, CPU only'``."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU only"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads, "
        f"torch {torch.__version__}, {device}"
    )
