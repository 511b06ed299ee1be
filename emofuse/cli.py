"""The ``emofuse`` command: thin subcommands over the library.

Each subcommand parses its arguments and calls one library function; a user error prints one
line (``emofuse: error: ...``) and exits with status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

__all__ = ["main"]


MODEL_HELP = "accurate (default) or fast (the bundled models), or a model file"

def _config_with_overrides(args: argparse.Namespace):
    from emofuse.config import ConfigError, CorpusSpec, load_config

    config = load_config(getattr(args, "config", None))
    if getattr(args, "corpus", None):
        if not args.root:
            raise ConfigError("--corpus needs --root (the corpus folder)")
        data = replace(config.data, corpora=[CorpusSpec(args.corpus, args.root)])
        config = replace(config, data=data)
    for name in ("task", "protocol"):
        if getattr(args, name, None):
            config = replace(config, data=replace(config.data, **{name: getattr(args, name)}))
    train = {k: getattr(args, k) for k in ("epochs", "seed") if getattr(args, k, None) is not None}
    if train:
        config = replace(config, train=replace(config.train, **train))
    return config


def cmd_model_summary(args: argparse.Namespace) -> None:
    from emofuse.config import load_config
    from emofuse.pipeline import load_model, pipeline_from_config

    if args.config and args.model:
        raise ValueError("give --model or --config, not both")
    if args.config:
        pipeline = pipeline_from_config(load_config(args.config))
    else:
        pipeline = load_model(args.model)
    print(pipeline.summary())


def cmd_features(args: argparse.Namespace) -> None:
    from emofuse.config import load_config
    from emofuse.pipeline.cache import StreamCache

    cache = StreamCache(load_config(args.config).streams)
    for path in args.files:
        streams = cache.compute(path)
        print(path)
        for name, frames in streams.items():
            print(
                f"  {name:<8} shape {tuple(frames.shape)}  mean {frames.mean():.3f}  "
                f"std {frames.std():.3f}  min {frames.min():.3f}  max {frames.max():.3f}"
            )


def cmd_corpus_info(args: argparse.Namespace) -> None:
    from emofuse.corpora import describe, load_corpus
    from emofuse.corpora.labels import apply_task

    utterances = load_corpus(args.corpus, args.root)
    print(describe(utterances))
    if args.task:
        selection = apply_task(utterances, args.task)
        print(f"\ntask {args.task}: {len(selection.utterances)} utterances kept")
        for name, count in {**selection.dropped_labels, **selection.dropped_codes}.items():
            print(f"  left out {name}: {count}")


def cmd_crossval(args: argparse.Namespace) -> None:
    from emofuse.experiments.crossval import run_crossval

    try:
        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    except ValueError:
        raise ValueError(
            f"--folds takes comma-separated fold indices, got {args.folds!r}"
        ) from None
    summary = run_crossval(
        _config_with_overrides(args), args.out, system=args.system, folds=folds,
        cache_dir=args.cache,
    )  # fmt: skip
    m, s = summary["mean"], summary["std"]
    print(
        f"{summary['corpus']} ({summary['protocol']}, {len(summary['folds'])}/{summary['n_folds']} "
        f"folds): WA {100 * m['wa']:.1f} +- {100 * s['wa']:.1f}  UA {100 * m['ua']:.1f} +- "
        f"{100 * s['ua']:.1f}  -> {args.out}/summary.md"
    )


def _corpus_specs(names: Sequence[str], root_dir: str | None, roots: Sequence[str]) -> list:
    """``--corpus`` names with their folders: ``--root NAME=DIR`` if given, else root-dir/NAME."""
    from pathlib import Path

    from emofuse.config import CorpusSpec

    given = {}
    for item in roots:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--root takes NAME=DIR, got {item!r}")
        if name not in names:
            raise ValueError(f"--root {item!r} names a corpus not in --corpus ({', '.join(names)})")
        given[name] = folder
    specs = []
    for name in names:
        if name not in given and root_dir is None:
            raise ValueError(f"no folder for corpus {name!r}: pass --root-dir or --root {name}=DIR")
        specs.append(CorpusSpec(name, given.get(name) or str(Path(root_dir) / name)))
    return specs


def cmd_compare(args: argparse.Namespace) -> None:
    from emofuse.config import load_config
    from emofuse.experiments.compare import run_compare
    from emofuse.experiments.variants import VARIANTS

    if args.seeds < 1:
        raise ValueError(f"--seeds must be positive, got {args.seeds}")
    base = load_config(args.config)
    if args.epochs is not None:
        base = replace(base, train=replace(base.train, epochs=args.epochs))
    run_compare(
        base, _corpus_specs(args.corpus, args.root_dir, args.root), args.systems or list(VARIANTS),
        list(range(args.seeds)), args.out, cache_dir=args.cache, run=not args.no_run,
    )  # fmt: skip
    print(f"-> {args.out}/table.md")


def cmd_ensemble(args: argparse.Namespace) -> None:
    from emofuse.experiments.ensemble import ensemble_crossval

    summary = ensemble_crossval(args.runs, args.out, weights=args.weights)
    m, s = summary["mean"], summary["std"]
    members = " / ".join(f"{100 * u:.1f}" for u in summary["member_mean_ua"])
    print(
        f"{summary['corpus']} ({summary['n_folds']} folds): runs UA {members} -> ensemble "
        f"WA {100 * m['wa']:.1f} +- {100 * s['wa']:.1f}  UA {100 * m['ua']:.1f} +- "
        f"{100 * s['ua']:.1f}  -> {args.out}/summary.md"
    )


def cmd_train(args: argparse.Namespace) -> None:
    from emofuse.experiments.deployable import train_final

    report = train_final(_config_with_overrides(args), args.out, cache_dir=args.cache)
    print(
        f"trained on {sum(report['train_utterances'].values())} utterances "
        f"({', '.join(f'{k} {v}' for k, v in report['train_utterances'].items())}); "
        f"validation UA {100 * report['val_ua']:.1f} at epoch {report['best_epoch']} "
        f"-> {args.out}/model.pt"
    )


def _reporter(failed: list):
    """``report(path, error)``: print the error on stderr and remember the path in ``failed``."""

    def report(path, error: Exception) -> None:
        failed.append(path)
        print(f"emofuse: error: {error}", file=sys.stderr)

    return report


def cmd_predict(args: argparse.Namespace) -> int:
    """Print the emotion (or ``--timeline``) of each file; 1 if any file failed."""
    from emofuse.files import find_audio_files
    from emofuse.inference.recognizer import EmotionRecognizer
    from emofuse.signal.audio import AudioError

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be positive, got {args.batch_size}")
    failed: list = []
    report = _reporter(failed)

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
    progress = len(files) > 1 and sys.stderr.isatty()
    labels = recognizer.labels
    if args.timeline or args.plot:
        timelines = {}
        for path in _progress(files, progress):
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
        _print_rows(rows, labels, args.format, ["file", "start", "end"])
    else:
        predictions = recognizer.predict_many(
            files, batch_size=args.batch_size, progress=progress, on_error=report
        )
        rows = [{"file": p.source, **p.to_dict()} for p in predictions if p is not None]
        _print_rows(rows, labels, args.format, ["file", "duration"])
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
    report = _reporter(failed)

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


def _progress(items: list, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, unit="file", leave=False)


def _print_rows(rows: list[dict], labels: Sequence[str], fmt: str, keys: list[str]) -> None:
    """Predictions or segments as a table, JSON list or CSV (one column per label)."""
    import csv
    import json

    for row in rows:
        row.pop("source", None)
        row["confidence"] = row["probabilities"].get(row["label"], 0.0)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow([*keys, "label", "confidence", "silent", *labels])
        for row in rows:
            probs = [f"{row['probabilities'][k]:.4f}" if not row["silent"] else "" for k in labels]
            writer.writerow([*(row[k] for k in keys), row["label"], f"{row['confidence']:.4f}",
                             int(row["silent"]), *probs])  # fmt: skip
    else:
        header = ["file", "start", "end"] if "start" in keys else ["file", "seconds"]
        cells = [[*header, "label", "confidence", "top"]]
        for row in rows:
            top = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:3]
            times = [f"{row[k]:.2f}" for k in keys[1:]]
            confidence = "-" if row["silent"] else f"{row['confidence']:.3f}"
            cells.append([row["file"], *times, row["label"], confidence,
                          "  ".join(f"{k} {p:.2f}" for k, p in top)])  # fmt: skip
        widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
        for c in cells:
            print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())


def cmd_export(args: argparse.Namespace) -> None:
    from emofuse.inference.onnx import export_onnx, sidecar_path
    from emofuse.pipeline import load_model

    pipeline = load_model(args.model)
    path = export_onnx(pipeline, args.onnx)
    print(f"wrote {path} and its sidecar {sidecar_path(path)}")


def _add_experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="experiment YAML (defaults when absent)")
    parser.add_argument("--corpus", help="corpus name, e.g. emodb, ravdess, emovo, iemocap")
    parser.add_argument("--root", help="the corpus folder")
    parser.add_argument("--task", help="label task, e.g. emodb7, iemocap4 (default: the corpus's)")
    parser.add_argument("--protocol", help="loso-speaker, loso-session, kfold-speaker-K, random")
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--seed", type=int, help="override train.seed")
    parser.add_argument("--cache", help="feature cache folder (default ~/.cache/emofuse/features)")


def build_parser() -> argparse.ArgumentParser:
    from emofuse import __version__

    parser = argparse.ArgumentParser(prog="emofuse", description="Speech emotion recognition.")
    parser.add_argument("--version", action="version", version=f"emofuse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_inspection_commands(commands)
    _add_research_commands(commands)
    _add_builder_commands(commands)
    return parser


def _add_inspection_commands(commands: argparse._SubParsersAction) -> None:
    """``model summary``, ``features``, ``corpus info``."""
    model = commands.add_parser("model", help="inspect the model")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    summary = model_commands.add_parser(
        "summary", help="streams, layers and parameter count of a model (default: the bundled one)"
    )
    summary.add_argument("--model", help=MODEL_HELP)
    summary.add_argument("--config", help="an untrained model of this experiment YAML instead")
    summary.set_defaults(func=cmd_model_summary)

    features = commands.add_parser("features", help="shapes and statistics of a file's features")
    features.add_argument("files", nargs="+", metavar="FILE")
    features.add_argument("--config", help="experiment YAML whose streams to compute")
    features.set_defaults(func=cmd_features)

    corpus = commands.add_parser("corpus", help="corpus manifests")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)
    info = corpus_commands.add_parser("info", help="counts per label, speaker and session")
    info.add_argument("--corpus", required=True)
    info.add_argument("--root", required=True)
    info.add_argument("--task", help="also show what this label task keeps and leaves out")
    info.set_defaults(func=cmd_corpus_info)


def _add_research_commands(commands: argparse._SubParsersAction) -> None:
    """``crossval``, ``compare``, ``ensemble``, ``train``."""
    crossval = commands.add_parser("crossval", help="speaker-independent cross-validation")
    _add_experiment_args(crossval)
    crossval.add_argument("--out", required=True, help="output folder (resumable)")
    crossval.add_argument(
        "--system", default="emofuse",
        help="emofuse: the network of the config (default); egemaps-svm: the eGeMAPS + SVM "
        "baseline",
    )  # fmt: skip
    crossval.add_argument("--folds", help="comma-separated fold indices, e.g. 0,3 (default: all)")
    crossval.set_defaults(func=cmd_crossval)

    compare = commands.add_parser(
        "compare", help="ablation table: every system on the same folds and seeds (resumable)"
    )
    compare.add_argument("--corpus", nargs="+", required=True, metavar="NAME")
    compare.add_argument("--root-dir", help="folder holding one sub-folder per corpus name")
    compare.add_argument(
        "--root", action="append", default=[], metavar="NAME=DIR", help="one corpus's folder"
    )
    compare.add_argument(
        "--systems", nargs="+", metavar="SYSTEM",
        help="full, no-multiscale, mfcc-only, logmel-only, concat-fusion, sum-fusion, no-bilstm, "
        "prosody, egemaps-svm, whisper-lr, whisper-lr-speaker, whisper, whisper-fusion "
        "(default: all)",
    )  # fmt: skip
    compare.add_argument("--seeds", type=int, default=3, help="N seeds: 0..N-1 (default 3)")
    compare.add_argument("--out", required=True, help="output folder (resumable)")
    compare.add_argument("--config", help="base experiment YAML (defaults when absent)")
    compare.add_argument("--epochs", type=int, help="override train.epochs")
    compare.add_argument(
        "--no-run", action="store_true",
        help="train nothing: tabulate the finished runs and list the missing ones",
    )  # fmt: skip
    compare.add_argument("--cache", help="feature cache folder (default ~/.cache/emofuse/features)")
    compare.set_defaults(func=cmd_compare)

    ensemble = commands.add_parser(
        "ensemble", help="average the posteriors of finished cross-validation runs, fold by fold"
    )
    ensemble.add_argument("runs", nargs="+", metavar="RUN_DIR", help="crossval output folders")
    ensemble.add_argument("--out", required=True, help="output folder")
    ensemble.add_argument(
        "--weights", type=float, nargs="+", metavar="W", help="one per run (default: equal)"
    )
    ensemble.set_defaults(func=cmd_ensemble)

    train = commands.add_parser(
        "train", help="train one model on every configured corpus (validation speakers held out)"
    )
    _add_experiment_args(train)
    train.add_argument("--out", required=True, help="output folder (resumable)")
    train.set_defaults(func=cmd_train)


def _add_builder_commands(commands: argparse._SubParsersAction) -> None:
    """``export``, ``predict``."""
    export = commands.add_parser("export", help="export a model to ONNX, with a sidecar JSON")
    export.add_argument("--onnx", required=True, metavar="OUT.onnx", help="ONNX file to write")
    export.add_argument("--model", help=MODEL_HELP)
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
    adapt.set_defaults(func=cmd_adapt)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("emofuse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 141
    except (ValueError, OSError, ImportError) as error:
        # AudioError, CorpusError, ConfigError and ModelFileError are ValueErrors.
        print(f"emofuse: error: {error}", file=sys.stderr)
        return 1
    return status or 0  # a subcommand may return 1 after reporting errors itself


if __name__ == "__main__":
    sys.exit(main())
