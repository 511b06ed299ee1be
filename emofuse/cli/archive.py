"""``emofuse archive``: a folder or manifest of any size -> a folder of parquet parts, on Ray
(:func:`emofuse.inference.archive.predict_archive`)."""

from __future__ import annotations

import argparse
import re
import sys

from emofuse.cli.common import add_model_args, add_runtime_args

__all__ = ["add_commands", "cmd_archive", "ray_address"]


def cmd_archive(args: argparse.Namespace) -> int:
    """Predict the folder or manifest into ``--output``, resumed if it exists; 1 if any file
    failed."""
    from emofuse.inference.archive import predict_archive

    summary = predict_archive(
        args.source, args.output, model=args.model, backend=args.backend,
        address=None if args.ray == "local" else args.ray, workers=args.workers,
        threads_per_worker=args.threads or 1, batch_size=args.batch_size,
        precision=args.precision, vad=not args.no_vad, progress=sys.stderr.isatty(),
    )  # fmt: skip
    errors = summary["errors"]
    print(f"{summary['out']}: {summary['predicted']} files predicted, {errors} failed"
          f"{' (see the error column)' if errors else ''}, {summary['done_before']} done before; "
          f"{summary['total']} in all, {summary['seconds']:.1f} s "
          f"({summary['precision']})")  # fmt: skip
    return 1 if errors else 0


def ray_address(value: str) -> str:
    """``--ray``'s ADDRESS: local, auto, ray://HOST:PORT or HOST:PORT (argparse type)."""
    if value in ("local", "auto") or re.fullmatch(r"(ray://)?[\w.-]+:\d+", value):
        return value
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a Ray address (local, auto, ray://HOST:PORT or HOST:PORT); put the "
        "folder or manifest before --ray, or write --ray local"
    )


def add_commands(commands: argparse._SubParsersAction) -> None:
    """``archive``."""
    archive = commands.add_parser(
        "archive", help="archive scale: a folder or manifest -> parquet parts, on Ray",
        description="Predict every file of a FOLDER or MANIFEST (.txt a path a line; .csv or "
        ".parquet with a 'path' column) on Ray Data into a folder of parquet parts, one row per "
        "file, read as one table by pandas, pyarrow or Ray. Run again to resume: files already "
        "in it, answered or failed, are skipped. Needs pip install 'emofuse[ray]'.",
    )  # fmt: skip
    archive.add_argument("source", metavar="FOLDER_OR_MANIFEST")
    archive.add_argument("--output", "-o", required=True, metavar="FOLDER",
                         help="the folder of parquet parts (e.g. predictions.parquet/)")
    archive.add_argument(
        "--ray", default="local", type=ray_address, metavar="ADDRESS",
        help="local (default: a Ray on this machine), auto, ray://HOST:PORT or HOST:PORT (a "
        "running cluster)",
    )  # fmt: skip
    archive.add_argument("--workers", type=int, metavar="N",
                         help="model workers, --threads CPUs each (default: as many as the "
                         "cluster's CPUs hold)")  # fmt: skip
    archive.add_argument("--batch-size", type=int,
                         help="audio per forward pass, in the model's windows (default: the "
                         "recogniser's)")  # fmt: skip
    add_model_args(archive)
    add_runtime_args(archive, threads=1, device=False, default="1 per worker")
    archive.set_defaults(func=cmd_archive)
