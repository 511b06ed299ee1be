"""Builder subcommands: ``predict``, ``adapt``, ``export``."""

from __future__ import annotations

import argparse
import os
import sys

from emofuse.cli.common import MODEL_HELP, add_runtime_args, progress, reporter
from emofuse.cli.output import print_rows

__all__ = ["add_commands"]


def cmd_predict(args: argparse.Namespace) -> int:
    """Print the emotion (or ``--timeline``) of each file; 1 if any file failed."""
    from emofuse.files import find_audio_files
    from emofuse.inference.recognizer import EmotionRecognizer
    from emofuse.signal.audio import AudioError

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    failed: list = []
    report = reporter(failed)

    files = []
    for item in args.inputs:
        found = find_audio_files([item])
        files += found
        if not found:
            report(item, ValueError(f"{item}: no audio files in this folder"))
    if args.plot and len(files) != 1:
        raise ValueError(f"--plot needs exactly one audio file, got {len(files)}")
    if args.embeddings and (args.timeline or args.plot):
        raise ValueError("--embeddings gives one row per file; it does not combine with --timeline")
    model = args.model or ("accurate" if args.backend == "torch" else None)
    recognizer = EmotionRecognizer.load(model, backend=args.backend)
    show_progress = len(files) > 1 and sys.stderr.isatty()
    labels = recognizer.labels
    if args.timeline or args.plot:
        timelines = {}
        for path in progress(files, show_progress):
            try:
                timelines[path] = list(
                    recognizer.timeline(
                        path, window=args.window, hop=args.hop, batch_size=args.batch_size
                    )
                )
            except AudioError as error:
                report(path, error)
        if args.plot and timelines:
            from emofuse.plots import plot_timeline

            plot_timeline(timelines[files[0]], labels, args.plot)
        rows = [{"file": p, **s.to_dict()} for p, segs in timelines.items() for s in segs]
        print_rows(rows, labels, args.format, ["file", "start", "end"])
    else:
        predictions = recognizer.predict_many(
            files, batch_size=args.batch_size, progress=show_progress, on_error=report
        )
        rows = [{"file": p.source, **p.to_dict()} for p in predictions if p is not None]
        print_rows(rows, labels, args.format, ["file", "duration"])
        if args.embeddings:
            _write_embeddings(recognizer, [p.source for p in predictions if p is not None],
                              args.embeddings)  # fmt: skip
    return 1 if failed else 0


def _write_embeddings(recognizer, files: list[str], out: str) -> None:
    """One pooled representation per answered file, in the printed order, to ``out`` (.npy),
    and the file names beside it (``out`` with ``.txt``)."""
    import numpy as np

    from emofuse.files import atomic_path, write_text

    rows = np.stack([recognizer.embed(path) for path in files]) if files else np.zeros((0, 0))
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, rows.astype(np.float32))
    names = os.path.splitext(out)[0] + ".txt"
    write_text(names, "".join(f"{path}\n" for path in files))
    print(f"embeddings {rows.shape} -> {out} (files: {names})", file=sys.stderr)


def cmd_adapt(args: argparse.Namespace) -> int:
    """Re-estimate a model's normalisation on unlabelled recordings; write the adapted model."""
    from emofuse.files import find_audio_files
    from emofuse.inference.adapt import adapt_pipeline
    from emofuse.pipeline import load_model, save_pipeline

    failed: list = []
    report = reporter(failed)

    files = find_audio_files(args.inputs)
    if not files:
        raise ValueError(f"no audio files in {' '.join(args.inputs)}")
    pipeline = load_model(args.model)
    adapted, used = adapt_pipeline(pipeline, files, min_seconds=args.min_seconds, on_error=report)
    extra = {**getattr(pipeline, "extra", {}), "adapted_on": used}
    save_pipeline(adapted, args.out, **extra)
    print(f"adapted on {used['files']} files ({used['seconds']:g} s; {used['skipped_silent']} "
          f"silent skipped) -> {args.out}")  # fmt: skip
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> None:
    from emofuse.inference.onnx import export_onnx, sidecar_path
    from emofuse.pipeline import load_model

    pipeline = load_model(args.model)
    path = export_onnx(pipeline, args.onnx)
    print(f"wrote {path} and its sidecar {sidecar_path(path)}")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """``export``, ``predict``."""
    export = commands.add_parser("export", help="export a model to ONNX, with a sidecar JSON")
    export.add_argument("--onnx", required=True, metavar="OUT.onnx", help="ONNX file to write")
    export.add_argument("--model", help=MODEL_HELP)
    add_runtime_args(export, threads=1, device=True)
    export.set_defaults(func=cmd_export)

    predict = commands.add_parser("predict", help="emotion of audio files (folders searched)")
    predict.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    predict.add_argument("--format", choices=("table", "json", "csv"), default="table")
    predict.add_argument("--timeline", action="store_true", help="one row per segment")
    predict.add_argument(
        "--window", type=float, help="timeline window, s (default: the model's evaluation window)"
    )
    predict.add_argument("--hop", type=float, help="timeline hop, s (default: the model's)")
    predict.add_argument("--plot", metavar="PNG", help="draw the timeline (implies --timeline)")
    predict.add_argument("--model", help=MODEL_HELP)
    predict.add_argument("--backend", choices=("torch", "onnx"), default="torch")
    predict.add_argument(
        "--batch-size", type=int,
        help="windows per forward pass (default: about 48 s of audio, 16 of the fast model's)",
    )  # fmt: skip
    predict.add_argument(
        "--embeddings", metavar="NPY",
        help="also save each file's pooled representation (N, E) to this .npy (names: .txt)",
    )  # fmt: skip
    add_runtime_args(predict, threads=1, device=True)
    predict.set_defaults(func=cmd_predict)

    adapt = commands.add_parser(
        "adapt", help="re-estimate a model's normalisation on your unlabelled recordings"
    )
    adapt.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    adapt.add_argument("--out", required=True, help="the adapted model file to write")
    adapt.add_argument("--model", help=MODEL_HELP)
    adapt.add_argument(
        "--min-seconds", type=float, default=60.0,
        help="least non-silent audio to accept (default 60 s)",
    )  # fmt: skip
    add_runtime_args(adapt, threads=1, device=True)
    adapt.set_defaults(func=cmd_adapt)

