"""Experiment configuration: plain YAML <-> dataclasses, written back beside every result.

A config file has up to four sections, each optional (defaults fill the rest)::

    features:                      # the features, fused in this order
      - {kind: mfcc, settings: {n_mfcc: 40}}
      - {kind: logmel, branch: {channels: 16}}
      - {kind: prosody}
    model: {multiscale: true, fusion: cross_attention}
    train: {epochs: 60, batch_size: 32, seed: 0}
    data: {corpora: [{name: emodb, root: ../shared/corpora/emodb}], task: emodb7}

Without ``features`` the paper's two (MFCC and log-Mel) are used. Older files still load with the
same meaning (:mod:`emofuse.migrate`) and are written back in this form: version 2 called the list
``streams``; version 1 had a ``features`` *mapping* of spectral settings and switches in ``model``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from emofuse.features import FeatureSpec, check_features, default_features
from emofuse.migrate import V1_MODEL_KEYS, features_from_v1, features_from_v2, is_v1
from emofuse.model import ModelConfig

__all__ = [
    "ConfigError",
    "PRECISIONS",
    "RUNTIME_SETTINGS",
    "TrainConfig",
    "CorpusSpec",
    "DataConfig",
    "ExperimentConfig",
    "load_config",
    "save_config",
]


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names it."""


def _check_keys(cls: type, values: dict, where: str) -> None:
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        known = ", ".join(f.name for f in fields(cls))
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {known})")


PRECISIONS = ("fp32", "bf16", "fp16")
# Settings of where and how fast a run goes, not of what it learns: a run may be resumed or
# compared with other values of these.
RUNTIME_SETTINGS = ("device", "num_threads", "loader_workers")


@dataclass
class TrainConfig:
    """Optimisation, segmenting and augmentation settings."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_epochs: int = 2
    patience: int = 12  # epochs without a better validation UA before stopping
    label_smoothing: float = 0.1
    class_weighted: bool = True  # loss weights inverse to training-class frequency
    crop_seconds: float = 3.0  # random training crops
    eval_window_seconds: float = 3.0  # evaluation windows, posteriors averaged per utterance
    eval_hop_fraction: float = 0.5
    time_masks: int = 2  # SpecAugment-style masks on both features
    time_mask_frames: int = 20
    freq_masks: int = 2
    freq_mask_bins: int = 8
    gain_db: float = 6.0  # random level change, +- dB (applied in the log domain)
    mixup_alpha: float = 0.0  # 0 disables mixup
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 | fp16: autocast for the forward pass (fp16 scales loss)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # torch CPU threads; 0 leaves torch's default
    loader_workers: int = -1  # batch builders; -1: 0 on the CPU, up to 4 per process on CUDA
    head: str = "network"  # network (gradient training) | logistic (emofuse.training.linear_head)
    head_c: float = 1e-3  # inverse regularisation of the logistic head
    # Training frames standardised with all training audio (global) or each training speaker's
    # with their own statistics (speaker: the model then adapts to a recording, docs/design.md §6).
    normalise: str = "global"
    # A logistic head trained on the frames the voice activity detector calls speech only; the
    # model file says so, and the recogniser then drops a clip's other samples before it runs.
    speech_only: bool = False

    def __post_init__(self) -> None:
        # Types first: YAML reads ``1e-3`` (no dot) as a string, ``16.0`` as a float.
        for f in fields(self):
            value = getattr(self, f.name)
            kind = {"int": int, "float": (int, float), "bool": bool, "str": str}[f.type]
            if not isinstance(value, kind) or (f.type != "bool" and isinstance(value, bool)):
                hint = " (YAML reads 1e-3 as text: write 1.0e-3)" if isinstance(value, str) else ""
                raise ConfigError(f"train.{f.name} must be of type {f.type}, got {value!r}{hint}")
        positive = ("epochs", "batch_size", "lr", "crop_seconds", "eval_window_seconds")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        non_negative = (
            "weight_decay", "warmup_epochs", "patience", "time_masks", "time_mask_frames",
            "freq_masks", "freq_mask_bins", "gain_db", "mixup_alpha", "num_threads",
        )  # fmt: skip
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.eval_hop_fraction <= 1:
            raise ConfigError(
                f"train.eval_hop_fraction must be in (0, 1], got {self.eval_hop_fraction}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(
                f"train.label_smoothing must be in [0, 1), got {self.label_smoothing}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"train.device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision must be {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.head not in ("network", "logistic"):
            raise ConfigError(f"train.head must be network or logistic, got {self.head!r}")
        if self.normalise not in ("global", "speaker"):
            raise ConfigError(f"train.normalise must be global or speaker, got {self.normalise!r}")
        if self.speech_only and self.head != "logistic":
            raise ConfigError("train.speech_only needs train.head: logistic")
        if self.head_c <= 0:
            raise ConfigError(f"train.head_c must be positive, got {self.head_c}")
        if self.loader_workers < -1:
            raise ConfigError(f"train.loader_workers must be >= -1, got {self.loader_workers}")


@dataclass
class CorpusSpec:
    """One corpus: its loader name and root folder; ``max_utterances`` keeps at most that many
    of its task's utterances, evenly spread over the loader's order (a large corpus that would
    otherwise dominate a network's training time)."""

    name: str
    root: str
    max_utterances: int | None = None

    def __post_init__(self) -> None:
        if self.max_utterances is not None and (
            not isinstance(self.max_utterances, int) or self.max_utterances < 1
        ):
            raise ConfigError(
                f"data.corpora {self.name}: max_utterances must be a positive integer, "
                f"got {self.max_utterances!r}"
            )


@dataclass
class DataConfig:
    """Which corpora, label task and fold protocol."""

    corpora: list[CorpusSpec] = field(default_factory=list)
    task: str | None = None  # default: the first corpus's own task
    protocol: str | None = None  # default: the first corpus's speaker-independent protocol


@dataclass
class ExperimentConfig:
    """Everything that determines a result."""

    features: list[FeatureSpec] = field(default_factory=default_features)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> ExperimentConfig:
        if not isinstance(values, dict):
            raise ConfigError(
                f"{where}: expected a mapping of sections, got {type(values).__name__}"
            )
        try:
            values = features_from_v2(values, where)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        v1 = is_v1(values)
        if v1 and isinstance(values.get("features"), list):
            old = ", ".join(sorted(V1_MODEL_KEYS & set(values.get("model") or {})))
            raise ConfigError(f"{where}: model key(s) {old} are version-1 switches; with a "
                              "'features' list, set each feature's branch instead")  # fmt: skip
        known = {"features", "model", "train", "data"}
        if set(values) - known:
            extra = ", ".join(sorted(set(values) - known))
            raise ConfigError(f"{where}: unknown key(s) {extra} (known: "
                              f"{', '.join(sorted(known))})")  # fmt: skip
        sections = {
            name: {} if values.get(name) is None else values[name]
            for name in (("features",) if v1 else ()) + ("model", "train", "data")
        }
        for name, section in sections.items():
            if not isinstance(section, dict):
                raise ConfigError(f"{where}: section {name!r} must be a mapping")
        features = values.get("features")
        if not v1 and features is not None and not isinstance(features, list):
            raise ConfigError(f"{where}: 'features' must be a list of feature entries")
        try:
            if v1:
                specs, model = features_from_v1(sections["features"], sections["model"])
            else:
                specs = (
                    default_features()
                    if features is None
                    else [FeatureSpec.from_dict(s) for s in features]
                )
                model = sections["model"]
            check_features(specs)
            data = dict(sections["data"])
            _check_keys(DataConfig, data, f"{where}: data")
            corpora = []
            for spec in data.pop("corpora", []):
                if not isinstance(spec, dict):
                    raise ConfigError(f"{where}: data.corpora entries need name and root")
                _check_keys(CorpusSpec, spec, f"{where}: data.corpora")
                corpora.append(CorpusSpec(**spec))
            _check_keys(TrainConfig, sections["train"], f"{where}: train")
            return cls(
                features=specs,
                model=ModelConfig.from_dict(model),
                train=TrainConfig(**sections["train"]),
                data=DataConfig(corpora=corpora, **data),
            )
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{where}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [s.to_dict() for s in self.features],
            "model": self.model.to_dict(),
            "train": asdict(self.train),
            "data": asdict(self.data),
        }

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the runtime settings (``RUNTIME_SETTINGS``): equal for two
        configs that train the same thing."""
        values = self.to_dict()
        values["train"] = {k: v for k, v in values["train"].items() if k not in RUNTIME_SETTINGS}
        return values


def _yaml_problem(error: yaml.YAMLError) -> str:
    """One line: where and what (PyYAML's own message spans several lines)."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or " ".join(str(error).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def load_config(path: str | os.PathLike | None) -> ExperimentConfig:
    """Read a YAML config; ``None`` gives the defaults."""
    if path is None:
        return ExperimentConfig()
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not a text YAML file (byte {error.start} is not UTF-8 text)"
        ) from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config ({error.strerror or error})") from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(error)})") from None
    try:
        return ExperimentConfig.from_dict(values, where=str(path))
    except ConfigError as error:  # a section's own check names the key, not the file
        message = str(error)
        if message.startswith(f"{path}:"):
            raise
        raise ConfigError(f"{path}: {message}") from None


def save_config(config: ExperimentConfig, path: str | os.PathLike) -> None:
    """Write the config as YAML (readable by :func:`load_config`)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
