"""The compared systems: the paper's network with one part changed at a time, and the claims.

A :class:`Variant` is a registered system (:mod:`emofuse.experiments.systems`) plus, for the
network, a config transform: which features (by kind) and which model switches. The features are
taken from the base config (its settings and branch widths); a kind the base lacks (the
prosody feature) is added with default settings on the first feature's frame grid. No model code
is forked: every ablation is configuration.

>>> VARIANTS["mfcc-only"].describe()
{'features': ['mfcc'], 'multiscale': True, 'fusion': 'cross_attention', 'temporal': 'bilstm'}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from emofuse.config import CorpusSpec, ExperimentConfig
from emofuse.features import FEATURE_KINDS, FeatureSpec, feature_spec

__all__ = ["BASELINE", "FULL", "PAPER_FEATURES", "Variant", "VARIANTS", "CLAIMS",
           "check_variants", "system_config"]  # fmt: skip

BASELINE = "egemaps-svm"
# The paper's network: every ablation below changes exactly one part of it.
FULL = {"multiscale": True, "fusion": "cross_attention", "temporal": "bilstm"}
PAPER_FEATURES = ("mfcc", "logmel")
# The frozen encoder's layers in the networks' Whisper feature (when the base config has none):
# the middle of Whisper base (docs/design.md §4.4), running half of the encoder.
ENCODER_SETTINGS = {"whisper": {"layers": [1, 2, 3]}}
# The pretrained-encoder network: a learned layer sum, attentive pooling, no BiLSTM.
ENCODER_NET = {**FULL, "temporal": "none", "pooling": "attention"}
# Encoder states depend on their context: evaluate a clip of up to 10 s whole, so a clip given
# to the recogniser is encoded as in evaluation (training crops stay 3 s).
ENCODER_TRAIN = {"eval_window_seconds": 10.0}


@dataclass(frozen=True)
class Variant:
    """A registered ``system``; for the network (``model`` not None) also the feature kinds it
    reads, in order, the model switches it sets and training settings it changes."""

    system: str
    model: dict[str, Any] | None = None
    kinds: tuple[str, ...] = field(default=PAPER_FEATURES)
    train: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any] | None:
        """The transform as written in ``table.json`` (``model``); None for a non-network."""
        if self.model is None:
            return None
        return {"features": list(self.kinds), **self.model, **self.train}

    def apply(self, base: ExperimentConfig) -> ExperimentConfig:
        """``base`` with this variant's features and model switches (unchanged for non-networks)."""
        if self.model is None:
            return base
        features = _features_of_kinds(base.features, self.kinds)
        return replace(base, features=features, model=replace(base.model, **self.model),
                       train=replace(base.train, **self.train))  # fmt: skip


def _features_of_kinds(base: Sequence[FeatureSpec], kinds: Sequence[str]) -> list[FeatureSpec]:
    """The first feature of each kind in ``base``; a missing kind with default settings on the
    frame grid (sample rate, hop) of ``base``'s first feature."""
    by_kind: dict[str, FeatureSpec] = {}
    for spec in base:
        by_kind.setdefault(spec.kind, spec)
    grid = {k: base[0].settings[k] for k in ("sample_rate", "hop_length")}
    return [by_kind[k] if k in by_kind
            else feature_spec(k, **grid) if FEATURE_KINDS[k].follows_grid
            else feature_spec(k, **ENCODER_SETTINGS.get(k, {})) for k in kinds]  # fmt: skip


VARIANTS: dict[str, Variant] = {
    "full": Variant("emofuse", FULL),
    "no-multiscale": Variant("emofuse", {**FULL, "multiscale": False}),  # plain residual blocks
    "mfcc-only": Variant("emofuse", FULL, ("mfcc",)),
    "logmel-only": Variant("emofuse", FULL, ("logmel",)),
    "concat-fusion": Variant("emofuse", {**FULL, "fusion": "concat"}),
    "sum-fusion": Variant("emofuse", {**FULL, "fusion": "sum"}),
    "no-bilstm": Variant("emofuse", {**FULL, "temporal": "none"}),
    # emofuse's addition, not the paper's: a third, prosody feature
    "prosody": Variant("emofuse", FULL, (*PAPER_FEATURES, "prosody")),
    BASELINE: Variant(BASELINE),  # not the network: eGeMAPS functionals + SVM
    # the accurate model's candidates: a frozen Whisper encoder (docs/design.md §4.4)
    "whisper-lr": Variant("whisper-lr"),  # pooled layers + logistic regression
    # the same, each speaker standardised by their own unlabelled audio (test speakers too)
    "whisper-lr-speaker": Variant("whisper-lr-speaker"),
    "whisper": Variant("emofuse", ENCODER_NET, ("whisper",), ENCODER_TRAIN),  # encoder alone
    # the encoder feature fused with the paper's two by cross-attention
    "whisper-fusion": Variant("emofuse", FULL, (*PAPER_FEATURES, "whisper"), ENCODER_TRAIN),
}
# (claim id, statement, the variant with the part, the variant without it). The paper's claims
# (a)-(d); emofuse's additions: the prosody feature (e) and the pretrained encoder feature (f), and
# whether the paper's fusion adds to that feature (g).
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("a", "residual multi-scale modules improve SER", "full", "no-multiscale"),
    ("b", "fusing MFCC with log-Mel improves SER", "full", "mfcc-only"),
    ("b", "fusing MFCC with log-Mel improves SER", "full", "logmel-only"),
    ("c", "cross-attention fusion improves SER", "full", "concat-fusion"),
    ("c", "cross-attention fusion improves SER", "full", "sum-fusion"),
    ("d", "a BiLSTM over the fused sequence improves SER", "full", "no-bilstm"),
    ("e", "an explicit prosody feature (emofuse's addition) improves SER", "prosody", "full"),
    ("f", "a frozen pretrained encoder feature improves SER", "whisper-fusion", "full"),
    ("g", "the paper's MFCC/log-Mel fusion adds to the encoder feature", "whisper-fusion",
     "whisper"),
)


def check_variants(names: Sequence[str]) -> list[str]:
    """``names`` as a list: known variants, at least one, no repeats (else ValueError)."""
    unknown = [s for s in names if s not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; known: {', '.join(VARIANTS)}")
    if not names or len(set(names)) != len(names):
        raise ValueError(f"systems must be a non-empty list without repeats, got {list(names)}")
    return list(names)


def system_config(
    base: ExperimentConfig, corpus: CorpusSpec, variant: str, seed: int
) -> ExperimentConfig:
    """``base`` for one corpus (its task/protocol unless ``base`` sets them), seed and variant."""
    check_variants([variant])
    config = VARIANTS[variant].apply(base)
    return replace(
        config,
        train=replace(config.train, seed=seed),
        data=replace(base.data, corpora=[corpus]),
    )
