"""The ``emofuse`` command: thin subcommands over the library.

Each subcommand parses its arguments and calls one library function; a user error prints one
line (``emofuse: error: ...``) and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace

__all__ = ["main"]


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
    from emofuse.model import EmotionNet

    print(EmotionNet(load_config(args.config).model).summary())


def cmd_features(args: argparse.Namespace) -> None:
    import torch

    from emofuse.audio import load_audio
    from emofuse.config import load_config
    from emofuse.features import FeatureExtractor

    config = load_config(args.config).features
    extract = FeatureExtractor(config)
    for path in args.files:
        wave = torch.from_numpy(load_audio(path, config.sample_rate))
        with torch.no_grad():
            mfcc, logmel, frames = extract(wave[None], torch.tensor([wave.numel()]))
        print(f"{path}: {wave.numel() / config.sample_rate:.2f} s, {int(frames)} frames")
        for name, feats in (("mfcc", mfcc[0]), ("logmel", logmel[0])):
            print(
                f"  {name:<6} shape {tuple(feats.shape)}  mean {feats.mean():.3f}  "
                f"std {feats.std():.3f}  min {feats.min():.3f}  max {feats.max():.3f}"
            )


def cmd_corpus_info(args: argparse.Namespace) -> None:
    from emofuse.corpora import describe, load_corpus
    from emofuse.labels import apply_task

    utterances = load_corpus(args.corpus, args.root)
    print(describe(utterances))
    if args.task:
        selection = apply_task(utterances, args.task)
        print(f"\ntask {args.task}: {len(selection.utterances)} utterances kept")
        for name, count in {**selection.dropped_labels, **selection.dropped_codes}.items():
            print(f"  left out {name}: {count}")


def cmd_crossval(args: argparse.Namespace) -> None:
    from emofuse.crossval import run_crossval

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


def cmd_train(args: argparse.Namespace) -> None:
    from emofuse.final import train_final

    report = train_final(_config_with_overrides(args), args.out, cache_dir=args.cache)
    print(
        f"trained on {sum(report['train_utterances'].values())} utterances "
        f"({', '.join(f'{k} {v}' for k, v in report['train_utterances'].items())}); "
        f"validation UA {100 * report['val_ua']:.1f} at epoch {report['best_epoch']} "
        f"-> {args.out}/model.pt"
    )


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

    model = commands.add_parser("model", help="inspect the model")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    summary = model_commands.add_parser("summary", help="layers and parameter count")
    summary.add_argument("--config", help="experiment YAML whose model section to use")
    summary.set_defaults(func=cmd_model_summary)

    features = commands.add_parser("features", help="shapes and statistics of a file's features")
    features.add_argument("files", nargs="+", metavar="FILE")
    features.add_argument("--config", help="experiment YAML whose features section to use")
    features.set_defaults(func=cmd_features)

    corpus = commands.add_parser("corpus", help="corpus manifests")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", required=True)
    info = corpus_commands.add_parser("info", help="counts per label, speaker and session")
    info.add_argument("--corpus", required=True)
    info.add_argument("--root", required=True)
    info.add_argument("--task", help="also show what this label task keeps and leaves out")
    info.set_defaults(func=cmd_corpus_info)

    crossval = commands.add_parser("crossval", help="speaker-independent cross-validation")
    _add_experiment_args(crossval)
    crossval.add_argument("--out", required=True, help="output folder (resumable)")
    crossval.add_argument(
        "--system", default="emofuse", choices=("emofuse", "egemaps-svm"),
        help="the network of the config (default) or the eGeMAPS + SVM baseline",
    )  # fmt: skip
    crossval.add_argument("--folds", help="comma-separated fold indices, e.g. 0,3 (default: all)")
    crossval.set_defaults(func=cmd_crossval)

    train = commands.add_parser(
        "train", help="train one model on every configured corpus (validation speakers held out)"
    )
    _add_experiment_args(train)
    train.add_argument("--out", required=True, help="output folder (resumable)")
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("emofuse: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, ImportError) as error:
        # AudioError, CorpusError, ConfigError and ModelFileError are ValueErrors.
        print(f"emofuse: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
