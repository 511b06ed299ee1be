"""What the subcommands share: runtime options (threads, device), error reporting, progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable

__all__ = [
    "MODEL_HELP", "add_runtime_args", "apply_runtime", "audio_inputs", "progress", "reporter",
]

MODEL_HELP = ("accurate or fast (the bundled models), a model file, or an exported .onnx "
              "(default: accurate)")


def add_runtime_args(
    parser: argparse.ArgumentParser, *, threads: int | None, device: bool, default: str = ""
) -> None:
    """``--threads`` (default ``threads``, described by ``default`` when None) and
    ``--device``."""
    default = default or ("the config's train.num_threads" if threads is None else str(threads))
    parser.add_argument(
        "--threads", type=int, default=threads, metavar="N",
        help=f"CPU threads for torch and onnxruntime (default: {default}; one thread per process "
        "is often fastest on a shared machine)",
    )  # fmt: skip
    if device:
        parser.add_argument(
            "--device", choices=("auto", "cpu", "cuda"), default="auto",
            help="where torch runs (default: auto, CUDA when present)",
        )  # fmt: skip


def apply_runtime(args: argparse.Namespace) -> None:
    """Before any work: torch's CPU threads from ``--threads`` (untouched without it)."""
    threads = getattr(args, "threads", None)
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be positive, got {threads}")
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process (e.g. main() called twice in tests)
        pass


def reporter(failed: list) -> Callable[[object, Exception], None]:
    """``report(path, error)``: print the error on stderr and remember the path in ``failed``."""

    def report(path: object, error: Exception) -> None:
        failed.append(path)
        print(f"emofuse: error: {error}", file=sys.stderr)

    return report


def audio_inputs(inputs: Iterable[str], report: Callable[[object, Exception], None]) -> list[str]:
    """The audio files of FILE_OR_DIR arguments, in order (folders searched); an argument that
    yields none is passed to ``report`` and the others go on."""
    from emofuse.files import find_audio_files

    files = []
    for item in inputs:
        found = find_audio_files([item])
        files += found
        if not found:
            report(item, ValueError(f"{item}: no audio files in this folder"))
    return files


def progress(items: Iterable, enabled: bool, total: int | None = None, unit: str = "file"):
    """``items`` with a tqdm bar on stderr when ``enabled`` and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, unit=unit, leave=False)
