"""The spellings of emofuse 0.1.0 that moved to verbs of their own, kept for one release:
``predict --stream -`` (now ``emofuse live``) and ``predict --ray ... --out FOLDER`` (now
``emofuse archive``). Each still runs, after a warning on stderr that names the new command."""

from __future__ import annotations

import argparse

from emofuse.cli.archive import cmd_archive, ray_address
from emofuse.cli.common import deprecated
from emofuse.cli.live import PCM_CHOICES, cmd_live
from emofuse.cli.output import FORMATS

__all__ = ["add_old_predict_options", "run_old_spelling"]


def add_old_predict_options(predict: argparse.ArgumentParser) -> None:
    """``--stream``, ``--rate``, ``--ray``, ``--out``, ``--ray-workers`` and ``--format
    s16le|f32le``, hidden from ``--help``."""
    hidden = argparse.SUPPRESS
    predict.add_argument("--stream", action="store_true", help=hidden)
    predict.add_argument("--rate", type=int, default=16000, help=hidden)
    predict.add_argument("--ray", nargs="?", const="local", type=ray_address, help=hidden)
    predict.add_argument("--out", help=hidden)
    predict.add_argument("--ray-workers", type=int, help=hidden)


def run_old_spelling(args: argparse.Namespace) -> int | None:
    """Run an old spelling as its new command (its exit status), or None for a plain
    ``predict``."""
    if args.stream:
        deprecated("predict --stream -", f"emofuse live --rate {args.rate} --pcm "
                   f"{'s16le' if args.format == 'table' else args.format}")  # fmt: skip
        return _as_live(args)
    if args.format in PCM_CHOICES:
        raise ValueError(f"--format {args.format} is the raw PCM of emofuse live; files are "
                         f"written as {', '.join(FORMATS)}")  # fmt: skip
    if args.ray is not None or args.out is not None or args.ray_workers is not None:
        deprecated("predict --ray ... --out FOLDER",
                   "emofuse archive FOLDER_OR_MANIFEST --output FOLDER [--ray ADDRESS] "
                   "[--workers N]")  # fmt: skip
        return _as_archive(args)
    return None


def _as_live(args: argparse.Namespace) -> int:
    if args.inputs != ["-"]:
        raise ValueError(f"--stream reads raw PCM from standard input: give '-' as the only "
                         f"input, got {' '.join(map(str, args.inputs))}")  # fmt: skip
    args.pcm = "s16le" if args.format == "table" else args.format
    if args.pcm not in PCM_CHOICES:
        raise ValueError(f"with --stream, --format names the input PCM (s16le or f32le; "
                         f"events are written as JSON lines), got {args.format}")  # fmt: skip
    _refuse(args, "--stream", "it writes each event to standard output as a JSON line", {
        "--timeline": args.timeline, "--plot": args.plot, "--output": args.output,
        "--embeddings": args.embeddings, "--adapt-to-inputs": args.adapt_to_inputs,
        "--window": args.window is not None, "--hop": args.hop is not None,
        "--ray": args.ray is not None})  # fmt: skip
    return cmd_live(args)


def _as_archive(args: argparse.Namespace) -> int:
    if args.ray is None:
        raise ValueError("--out and --ray-workers are for --ray; without it, write with --output")
    if args.out is None:
        raise ValueError("--ray needs --out FOLDER: the folder of parquet parts to write")
    if len(args.inputs) != 1:
        raise ValueError(f"--ray takes one folder or manifest, got {len(args.inputs)} inputs")
    _refuse(args, "--ray", "it writes one row per file to the parquet parts in --out, on the CPU", {
        "--format": args.format != "table", "--output": args.output, "--timeline": args.timeline,
        "--window": args.window is not None, "--hop": args.hop is not None, "--plot": args.plot,
        "--embeddings": args.embeddings, "--device": args.device != "auto",
        "--adapt-to-inputs": args.adapt_to_inputs, "--labels": args.labels is not None,
    })  # fmt: skip
    args.source, args.output, args.workers = args.inputs[0], args.out, args.ray_workers
    return cmd_archive(args)


def _refuse(args: argparse.Namespace, mode: str, why: str, options: dict[str, object]) -> None:
    given = [option for option, used in options.items() if used]
    if given:
        raise ValueError(f"{mode} does not combine with {', '.join(given)}: {why}")
