"""The compared systems: the paper's network with one part changed at a time, and the claims.

A :class:`Variant` is a registered system (:mod:`emofuse.experiments.systems`) plus, for the
network, a config transform: which streams (by kind) and which model switches. The streams are
taken from the base config (its settings and branch widths); a kind the base lacks (the
prosody stream) is added with default settings on the first stream's frame grid. No model code
is forked: every ablation is configuration.

>>> VARIANTS["mfcc-only"].describe()
{'streams': ['mfcc'], 'multiscale': True, 'fusion': 'cross_attention', 'temporal': 'bilstm'}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from emofuse.config import CorpusSpec, ExperimentConfig
from emofuse.signal.streams import StreamSpec, stream_spec

__all__ = ["BASELINE", "FULL", "PAPER_STREAMS", "Variant", "VARIANTS", "CLAIMS",
           "check_variants", "system_config"]  # fmt: skip

BASELINE = "egemaps-svm"
# The paper's network: every ablation below changes exactly one part of it.
FULL = {"multiscale": True, "fusion": "cross_attention", "temporal": "bilstm"}
PAPER_STREAMS = ("mfcc", "logmel")


@dataclass(frozen=True)
class Variant:
    """A registered ``system``; for the network (``model`` not None) also the stream kinds it
    reads, in order, and the model switches it sets."""

    system: str
    model: dict[str, Any] | None = None
    kinds: tuple[str, ...] = field(default=PAPER_STREAMS)

    def describe(self) -> dict[str, Any] | None:
        """The transform as written in ``table.json`` (``model``); None for a non-network."""
        return None if self.model is None else {"streams": list(self.kinds), **self.model}

    def apply(self, base: ExperimentConfig) -> ExperimentConfig:
        """``base`` with this variant's streams and model switches (unchanged for non-networks)."""
        if self.model is None:
            return base
        streams = _streams_of_kinds(base.streams, self.kinds)
        return replace(base, streams=streams, model=replace(base.model, **self.model))


def _streams_of_kinds(base: Sequence[StreamSpec], kinds: Sequence[str]) -> list[StreamSpec]:
    """The first stream of each kind in ``base``; a missing kind with default settings on the
    frame grid (sample rate, hop) of ``base``'s first stream."""
    by_kind: dict[str, StreamSpec] = {}
    for spec in base:
        by_kind.setdefault(spec.kind, spec)
    grid = {k: base[0].settings[k] for k in ("sample_rate", "hop_length")}
    return [by_kind[k] if k in by_kind else stream_spec(k, **grid) for k in kinds]


VARIANTS: dict[str, Variant] = {
    "full": Variant("emofuse", FULL),
    "no-multiscale": Variant("emofuse", {**FULL, "multiscale": False}),  # plain residual blocks
    "mfcc-only": Variant("emofuse", FULL, ("mfcc",)),
    "logmel-only": Variant("emofuse", FULL, ("logmel",)),
    "concat-fusion": Variant("emofuse", {**FULL, "fusion": "concat"}),
    "sum-fusion": Variant("emofuse", {**FULL, "fusion": "sum"}),
    "no-bilstm": Variant("emofuse", {**FULL, "temporal": "none"}),
    # emofuse's addition, not the paper's: a third, prosody stream
    "prosody": Variant("emofuse", FULL, (*PAPER_STREAMS, "prosody")),
    BASELINE: Variant(BASELINE),  # not the network: eGeMAPS functionals + SVM
}
# (claim id, statement, the variant with the part, the variant without it)
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("a", "residual multi-scale modules improve SER", "full", "no-multiscale"),
    ("b", "fusing MFCC with log-Mel improves SER", "full", "mfcc-only"),
    ("b", "fusing MFCC with log-Mel improves SER", "full", "logmel-only"),
    ("c", "cross-attention fusion improves SER", "full", "concat-fusion"),
    ("c", "cross-attention fusion improves SER", "full", "sum-fusion"),
    ("d", "an explicit prosody stream (emofuse's addition) improves SER", "prosody", "full"),
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
        train=replace(base.train, seed=seed),
        data=replace(base.data, corpora=[corpus]),
    )
