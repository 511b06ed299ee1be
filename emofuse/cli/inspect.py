"""Inspection subcommands: ``model summary``, ``features``, ``corpus info``."""

from __future__ import annotations

import argparse

from emofuse.cli.common import MODEL_HELP, add_runtime_args

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


def add_commands(commands: argparse._SubParsersAction) -> None:
    """``model summary``, ``features``, ``corpus info``."""
    model = commands.add_parser("model", help="inspect the model")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    summary = model_commands.add_parser(
        "summary", help="streams, layers and parameter count of a model (default: the bundled one)"
    )
    summary.add_argument("--model", help=MODEL_HELP)
    summary.add_argument("--config", help="an untrained model of this experiment YAML instead")
    add_runtime_args(summary, threads=1, device=False)
    summary.set_defaults(func=cmd_model_summary)

    features = commands.add_parser("features", help="shapes and statistics of a file's features")
    features.add_argument("files", nargs="+", metavar="FILE")
    features.add_argument("--config", help="experiment YAML whose streams to compute")
    add_runtime_args(features, threads=1, device=False)
    features.set_defaults(func=cmd_features)

    corpus = commands.add_parser("corpus", help="corpus manifests")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)
    info = corpus_commands.add_parser("info", help="counts per label, speaker and session")
    info.add_argument("--corpus", required=True)
    info.add_argument("--root", required=True)
    info.add_argument("--task", help="also show what this label task keeps and leaves out")
    add_runtime_args(info, threads=1, device=False)
    info.set_defaults(func=cmd_corpus_info)

