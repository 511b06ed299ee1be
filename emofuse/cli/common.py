"""What the subcommands share: runtime options (threads, device), error reporting, progress."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emofuse.inference.recognizer import EmotionRecognizer

__all__ = [
    "MODEL_HELP", "add_model_args", "add_runtime_args", "apply_runtime", "audio_inputs",
    "deprecated", "load_recognizer", "progress", "reporter", "say_precision",
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


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """What :func:`load_recognizer` reads: ``--model``, ``--backend``,
    ``--precision`` and ``--no-vad``."""
    parser.add_argument("--model", default="accurate", help=MODEL_HELP)
    parser.add_argument(
        "--backend", choices=("auto", "torch", "onnx"), default="auto",
        help="what runs the model (default: auto, onnxruntime for a .onnx file, else torch)",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16"), default="auto",
        help="auto (default): bf16 where the CPU (AMX, AVX512-BF16) or GPU computes bfloat16 "
        "natively and the model's labels were measured to agree with fp32, else fp32; said on "
        "stderr. bf16 is slower where bfloat16 is emulated. Speed-up and agreement: "
        "docs/benchmarks.md (torch backend; onnx runs fp32)",
    )  # fmt: skip
    parser.add_argument(
        "--no-vad", action="store_true",
        help="no voice activity detection: only digital silence (below -60 dBFS) is left out "
        "(default: audio without speech gets 'no speech')",
    )  # fmt: skip


def load_recognizer(args: argparse.Namespace, threads: int) -> EmotionRecognizer:
    """The recogniser :func:`add_model_args`'s options name, on ``--device``, with ``threads``
    onnxruntime threads (torch's are set by :func:`apply_runtime` or the command)."""
    from emofuse.inference.recognizer import EmotionRecognizer

    return EmotionRecognizer.load(
        args.model, backend=args.backend, device=args.device,
        threads=threads, precision=args.precision, vad=not args.no_vad,
    )  # fmt: skip


def say_precision(recognizer: EmotionRecognizer) -> None:
    """Say on stderr what ``auto`` chose for the recogniser that will run (after any
    adaptation, which may change it), once per command."""
    choice = recognizer.backend.precision_choice
    if choice.requested == "auto":
        print(f"emofuse: precision {choice.used}: {choice.reason}", file=sys.stderr)


def deprecated(old: str, new: str) -> None:
    """Say on stderr that ``old`` still works in this release and ``new`` replaces it."""
    print(f"emofuse: warning: {old} is deprecated and goes in the next release; use {new}",
          file=sys.stderr)  # fmt: skip


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
