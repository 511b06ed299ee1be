"""Builder subcommands: ``predict`` (files), ``adapt``, ``export``."""

from __future__ import annotations

import argparse
import os
import sys

from emofuse.cli.common import (
    MODEL_HELP,
    add_model_args,
    add_runtime_args,
    audio_inputs,
    load_recognizer,
    progress,
    reporter,
    say_precision,
)
from emofuse.cli.deprecated import add_old_predict_options, run_old_spelling
from emofuse.cli.live import PCM_CHOICES
from emofuse.cli.output import FORMATS, RowWriter, check_writable, open_output

__all__ = ["add_commands"]


def cmd_predict(args: argparse.Namespace) -> int:
    """Write the emotion (or ``--timeline``) of each file as it is computed; 1 if any failed."""
    import torch

    from emofuse.inference.results import label_subset
    from emofuse.signal.audio import AudioError

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    if (status := run_old_spelling(args)) is not None:
        return status
    for option, path in (("--output", args.output), ("--plot", args.plot),
                         ("--embeddings", args.embeddings)):  # fmt: skip
        if path:
            check_writable(path, option)
    failed: list = []
    report = reporter(failed)
    files = audio_inputs(args.inputs, report)
    if args.plot and len(files) != 1:
        raise ValueError(f"--plot needs exactly one audio file, got {len(files)}")
    if args.embeddings and (args.timeline or args.plot):
        raise ValueError("--embeddings gives one row per file; it does not combine with --timeline")
    timeline = args.timeline or args.plot
    # Many files: --threads batches at once, one thread each (faster than threads within one
    # batch; bench/predict_many.py). A timeline: one batch at a time on --threads threads.
    # Default: one thread for one file or a timeline, two workers for many files.
    wanted = args.threads or (1 if timeline or len(files) < 2 else min(2, os.cpu_count() or 1))
    workers, threads = (1, wanted) if timeline else (wanted, 1)
    torch.set_num_threads(threads)
    recognizer = load_recognizer(args, threads)
    subset = label_subset(recognizer.labels, args.labels)  # before any work or output
    if args.adapt_to_inputs:
        recognizer = recognizer.adapt(files, on_error=lambda path, error: None)  # told below
        used = recognizer.adaptation
        print(f"emofuse: adapted to the inputs: {used['files']} files, {used['seconds']:g} s of "
              f"audio ({used['skipped_silent']} silent skipped; training statistics weigh as "
              f"{used['prior_seconds']:g} s)", file=sys.stderr)  # fmt: skip
    say_precision(recognizer)
    show_progress = len(files) > 1 and (args.output is not None or not sys.stdout.isatty())
    keys = ["file", "start", "end"] if timeline else ["file", "duration"]
    answered, segments = [], []
    with open_output(args.output) as out:
        writer = RowWriter(out, args.format, subset or recognizer.labels, keys, files)
        if timeline:
            for path in progress(files, show_progress):
                try:
                    for segment in recognizer.timeline(
                        path, window_seconds=args.window, hop_seconds=args.hop,
                        batch_size=args.batch_size, labels=subset,
                    ):  # fmt: skip
                        writer.write({"file": path, **segment.to_dict()})
                        if args.plot:
                            segments.append(segment)
                except AudioError as error:
                    report(path, error)
        else:
            predictions = recognizer.iter_predictions(
                files, batch_size=args.batch_size, on_error=report, workers=workers,
                progress=show_progress and sys.stderr.isatty(), labels=subset,
            )  # fmt: skip
            long_files = []
            for _, prediction in predictions:
                writer.write({"file": prediction.source, **prediction.to_dict()})
                answered.append(prediction.source)
                if prediction.duration > LONG_FILE_WINDOWS * recognizer.backend.window_seconds:
                    long_files.append(prediction)
            _hint_timeline(long_files, recognizer.backend.window_seconds)
        writer.close()
    if args.plot and segments:
        from emofuse.plots import plot_timeline

        plot_timeline(segments, subset or recognizer.labels, args.plot)
    if args.embeddings:
        _write_embeddings(recognizer, answered, args.embeddings)
    return 1 if failed else 0


LONG_FILE_WINDOWS = 10  # a file longer than this many evaluation windows gets the timeline hint


def _hint_timeline(long_files: list, window_seconds: float) -> None:
    """Say that long files were each averaged into one label, and that ``--timeline`` exists."""
    if long_files:
        first = long_files[0]
        more = f" (and {len(long_files) - 1} more)" if len(long_files) > 1 else ""
        print(f"emofuse: note: {first.source}{more} is {first.duration:.0f} s long: its "
              f"{window_seconds:g} s windows were averaged into one label; --timeline gives "
              "one label per segment", file=sys.stderr)  # fmt: skip


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
    from emofuse.device import resolve_device
    from emofuse.files import find_audio_files
    from emofuse.inference.adapt import adapt_pipeline, speech_keeper
    from emofuse.pipeline import load_model, save_pipeline

    failed: list = []
    report = reporter(failed)

    files = find_audio_files(args.inputs)
    if not files:
        raise ValueError(f"no audio files in {' '.join(args.inputs)}")
    pipeline = load_model(args.model).to(resolve_device(args.device))
    adapted, used = adapt_pipeline(pipeline, files, min_seconds=args.min_seconds,
                                   prior_seconds=args.prior_seconds,
                                   keep=speech_keeper(pipeline), on_error=report)  # fmt: skip
    adapted = adapted.cpu()
    extra = {**adapted.extra, "adapted_on": used}
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
    add_runtime_args(export, threads=1, device=False)  # exported on the CPU
    export.set_defaults(func=cmd_export)

    predict = commands.add_parser(
        "predict", help="emotion of audio files (folders searched)",
        description="The emotion of each audio file (or, with --timeline, of each stretch of a "
        "long recording), written as soon as it is computed. Files without speech (silence, "
        "noise, hum) get the label 'no speech' and a reason. Exit status 1 if any file failed.",
    )  # fmt: skip
    predict.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    predict.add_argument(
        "--format", choices=(*FORMATS, *PCM_CHOICES), default="table",
        metavar="{" + ",".join(FORMATS) + "}",
        help="table (default); csv (a column per label); json (one list); jsonl (one object per "
        "line)",
    )  # fmt: skip
    predict.add_argument("--output", "-o", metavar="FILE",
                         help="write here, atomically (default: standard output)")
    predict.add_argument(
        "--timeline", action="store_true",
        help="one row per segment of each file, cut at speech boundaries",
    )  # fmt: skip
    predict.add_argument("--window", type=float, metavar="SECONDS",
                         help="timeline window (default: the model's evaluation window)")
    predict.add_argument("--hop", type=float, metavar="SECONDS",
                         help="timeline hop (default: the model's)")
    predict.add_argument("--plot", metavar="PNG",
                         help="draw the timeline of one file (implies --timeline)")
    predict.add_argument(
        "--labels", metavar="A,B,...",
        help="answer over these of the model's labels only (comma-separated, e.g. "
        "neutral,happy,sad,angry): probabilities renormalised over them",
    )  # fmt: skip
    predict.add_argument(
        "--batch-size", type=int,
        help="audio per forward pass, in the model's windows (default: about 30 s, 10 of the "
        "fast model's 3 s windows, short clips sharing a batch; a pretrained-encoder model such "
        "as accurate runs one window per pass on the CPU)",
    )  # fmt: skip
    predict.add_argument(
        "--adapt-to-inputs", action="store_true",
        help="first re-estimate the model's normalisation on the inputs themselves (at least "
        "60 s of audio, labels unused): for a folder of one microphone, room or speaker group; "
        "said on stderr (torch backend)",
    )  # fmt: skip
    predict.add_argument(
        "--embeddings", metavar="NPY",
        help="also save each file's pooled representation (N, E) to this .npy (names: .txt)",
    )  # fmt: skip
    add_model_args(predict)
    add_runtime_args(predict, threads=None, device=True,
                     default="1 for one file or a timeline, 2 for many files")  # fmt: skip
    add_old_predict_options(predict)
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
    adapt.add_argument(
        "--prior-seconds", type=float,
        help="how many seconds of your audio the training statistics weigh (default: the "
        "prior for a folder of many speakers, emofuse.inference.adapt.FOLDER_PRIOR_SECONDS; "
        "give 20 for the files of one speaker or one recording)",
    )  # fmt: skip
    add_runtime_args(adapt, threads=1, device=True)
    adapt.set_defaults(func=cmd_adapt)

