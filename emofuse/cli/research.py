"""Research subcommands: ``crossval``, ``compare``, ``ensemble``, ``train``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

from emofuse.cli.common import add_runtime_args

__all__ = ["add_commands"]


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
    train.update(_runtime_overrides(args))
    if train:
        config = replace(config, train=replace(config.train, **train))
    return config


def _runtime_overrides(args: argparse.Namespace) -> dict:
    """``--threads``, ``--device``, ``--precision`` and ``--loader-workers`` as ``train`` config
    fields (absent: the config's own)."""
    overrides = {}
    if getattr(args, "threads", None) is not None:
        overrides["num_threads"] = args.threads
    if getattr(args, "device", "auto") != "auto":
        overrides["device"] = args.device
    for name in ("precision", "loader_workers"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    return overrides


def distributed_main() -> bool:
    """False in torchrun's processes other than rank 0 (which alone prints results)."""
    from emofuse.training.distributed import world

    return world().is_main


def _add_scale_args(parser: argparse.ArgumentParser, jobs: bool) -> None:
    """``--precision``, ``--loader-workers`` and (fold-parallel commands) ``--jobs``."""
    parser.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"),
        help="training forward pass under autocast: bf16, or fp16 with loss scaling "
        "(default: the config's train.precision, fp32)",
    )  # fmt: skip
    parser.add_argument(
        "--loader-workers", type=int, metavar="N",
        help="processes building training batches into pinned memory (default: the config's "
        "train.loader_workers; -1: none on the CPU, up to 4 per process on CUDA)",
    )  # fmt: skip
    if jobs:
        parser.add_argument(
            "--jobs", type=int, default=1, metavar="N",
            help="train N folds at once in separate processes, each with --threads threads "
            "(default: CPUs / N); same results as one at a time (default 1)",
        )  # fmt: skip


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
        cache_dir=args.cache, jobs=args.jobs,
    )  # fmt: skip
    if not distributed_main():
        return
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
    overrides = _runtime_overrides(args)
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    base = replace(base, train=replace(base.train, **overrides))
    run_compare(
        base, _corpus_specs(args.corpus, args.root_dir, args.root), args.systems or list(VARIANTS),
        list(range(args.seeds)), args.out, cache_dir=args.cache, run=not args.no_run,
        jobs=args.jobs,
    )  # fmt: skip
    if distributed_main():
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
    if not distributed_main():
        return
    if report.get("head") == "logistic":
        held = ", ".join(f"{k} {100 * v:.1f}" for k, v in report["leave_one_corpus_out_ua"].items())
        chosen = f"leave-one-corpus-out UA {held}; temperature {report['temperature']:g}"
    else:
        chosen = f"validation UA {100 * report['val_ua']:.1f} at epoch {report['best_epoch']}"
    print(
        f"trained on {sum(report['train_utterances'].values())} utterances "
        f"({', '.join(f'{k} {v}' for k, v in report['train_utterances'].items())}); "
        f"{chosen} -> {args.out}/model.pt"
    )


def _add_experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="experiment YAML (defaults when absent)")
    parser.add_argument("--corpus", help="corpus name, e.g. emodb, ravdess, emovo, iemocap")
    parser.add_argument("--root", help="the corpus folder")
    parser.add_argument("--task", help="label task, e.g. emodb7, iemocap4 (default: the corpus's)")
    parser.add_argument(
        "--protocol",
        help="loso-speaker, loso-session, kfold-speaker-K (e.g. kfold-speaker-6), loco (leave one "
        "corpus out; needs 2+ corpora in the config) or random (default: the corpus's)",
    )
    parser.add_argument("--epochs", type=int, help="override train.epochs")
    parser.add_argument("--seed", type=int, help="override train.seed")
    parser.add_argument("--cache", help="feature cache folder (default ~/.cache/emofuse/features)")
    add_runtime_args(parser, threads=None, device=True)


def add_commands(commands: argparse._SubParsersAction) -> None:
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
    _add_scale_args(crossval, jobs=True)
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
    add_runtime_args(compare, threads=None, device=True)
    _add_scale_args(compare, jobs=True)
    compare.set_defaults(func=cmd_compare)

    ensemble = commands.add_parser(
        "ensemble", help="average the posteriors of finished cross-validation runs, fold by fold"
    )
    ensemble.add_argument("runs", nargs="+", metavar="RUN_DIR", help="crossval output folders")
    ensemble.add_argument("--out", required=True, help="output folder")
    ensemble.add_argument(
        "--weights", type=float, nargs="+", metavar="W", help="one per run (default: equal)"
    )
    add_runtime_args(ensemble, threads=1, device=False)
    ensemble.set_defaults(func=cmd_ensemble)

    train = commands.add_parser(
        "train", help="train one model on every configured corpus (validation speakers held out)"
    )
    _add_experiment_args(train)
    train.add_argument("--out", required=True, help="output folder (resumable)")
    _add_scale_args(train, jobs=False)
    train.set_defaults(func=cmd_train)
