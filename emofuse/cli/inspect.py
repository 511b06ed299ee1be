"""Inspection subcommands: ``model summary``, ``features``, ``corpus info``."""

from __future__ import annotations

import argparse

from emofuse.cli.common import MODEL_HELP, add_runtime_args, audio_inputs, reporter

__all__ = ["add_commands"]


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


def cmd_features(args: argparse.Namespace) -> int:
    """Save each file's features (``--out``), or print their shapes and statistics; 1 if any
    file failed."""
    from emofuse.feature_files import frontend_for, iter_frames, save_features

    failed: list = []
    report = reporter(failed)
    files = audio_inputs(args.inputs, report)
    frontend = frontend_for(model=args.model, config=args.config)
    if args.out is None:
        if args.egemaps or args.format != "npy":
            raise ValueError("--egemaps and --format need --out")
        for path, features in iter_frames(files, frontend, on_error=report):
            print(path)
            for name, frames in features.items():
                print(
                    f"  {name:<8} shape {tuple(frames.shape)}  mean {frames.mean():.3f}  "
                    f"std {frames.std():.3f}  min {frames.min():.3f}  max {frames.max():.3f}"
                )
        return 1 if failed else 0
    saved = save_features(
        files, args.out, frontend=frontend, fmt=args.format, egemaps=args.egemaps, on_error=report
    )
    features = ",".join(spec.name for spec in frontend.specs)
    print(f"{len(saved.written)} of {len(files)} files -> {args.out}/<name>.{{{features}}}"
          f".{args.format}")  # fmt: skip
    if saved.egemaps:
        print(f"eGeMAPS functionals -> {saved.egemaps}")
    return 1 if failed else 0


def cmd_corpus_info(args: argparse.Namespace) -> None:
    """Counts of the corpus as it is, then of what the label task (``--task``, else the
    corpus's default task) keeps."""
    from emofuse.corpora import describe, load_corpus
    from emofuse.corpora.labels import apply_task, default_task

    utterances = load_corpus(args.corpus, args.root)
    if args.task:
        task = args.task
    else:
        try:
            task = default_task(args.corpus)
        except ValueError:  # the generic corpus: no usual task
            print(describe(utterances))
            print(f"\n({args.corpus} has no default label task; choose one with --task)")
            return
    print(describe(utterances, apply_task(utterances, task)))
    if not args.task:
        print(f"({task.name} is the default task of {args.corpus}; another: --task NAME)")


def add_commands(commands: argparse._SubParsersAction) -> None:
    """``model summary``, ``features``, ``corpus info``."""
    model = commands.add_parser("model", help="inspect the model")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    summary = model_commands.add_parser(
        "summary", help="features, layers and parameter count of a model (default: the bundled one)"
    )
    summary.add_argument("--model", help=MODEL_HELP)
    summary.add_argument("--config", help="an untrained model of this experiment YAML instead")
    add_runtime_args(summary, threads=1, device=False)
    summary.set_defaults(func=cmd_model_summary)

    features = commands.add_parser(
        "features",
        help="save a model's features of audio files (--out), or print their statistics",
        description="Compute the features a model reads (raw, before its normalisation) "
        "for each audio file (folders are searched). Without --out: print each feature's shape "
        "and statistics. With --out DIR: write DIR/NAME.FEATURE.npy (float32, frames x dims) or "
        ".csv (a frame_time column in seconds, then FEATURE_0, FEATURE_1, ...), where NAME is the "
        "file's stem; files that share a stem get their parent folders in front (a/x.wav -> "
        "a__x.mfcc.npy, b/x.wav -> b__x.mfcc.npy), so nothing is overwritten. A bad file is "
        "reported and the others go on; the exit status is 1 if any failed.",
    )
    features.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR")
    features.add_argument("--out", metavar="DIR", help="write feature files into DIR")
    features.add_argument(
        "--format", choices=("npy", "csv"), default="npy", help="feature file format (default: npy)"
    )
    features.add_argument(
        "--egemaps", action="store_true",
        help="also write the 88 eGeMAPSv02 functionals of each file, one row per file, to "
        "DIR/egemaps.csv (needs opensmile: pip install 'emofuse[baseline]')",
    )  # fmt: skip
    features.add_argument(
        "--model", help="the features of this model, accurate or fast (the bundled models) or a "
        "model file, with its front-end weights (default: the default config's features, MFCC "
        "and log-Mel)",
    )  # fmt: skip
    features.add_argument("--config", help="the features of this experiment YAML instead")
    add_runtime_args(features, threads=1, device=False)
    features.set_defaults(func=cmd_features)

    corpus = commands.add_parser("corpus", help="corpus manifests")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)
    info = corpus_commands.add_parser("info", help="counts per label, speaker and session")
    info.add_argument("--corpus", required=True)
    info.add_argument("--root", required=True)
    info.add_argument(
        "--task", help="the label task whose kept classes to count (default: the corpus's own)"
    )
    add_runtime_args(info, threads=1, device=False)
    info.set_defaults(func=cmd_corpus_info)
