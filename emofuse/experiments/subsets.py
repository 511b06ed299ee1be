"""Named parts of a corpus scored on their own, from the predictions a run already made.

A corpus module may define ``SUBSETS`` (name -> predicate on an :class:`Utterance`): ASED's
"common sentences" are the two texts spoken in all five emotions, where the words cannot give
the label away (:mod:`emofuse.corpora.ased`). A finished cross-validation run is rescored on a
subset by keeping the test predictions whose utterance id is in it: per fold, UA and WA over
those clips alone; nothing is retrained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emofuse.config import CorpusSpec
from emofuse.corpora import CORPORA, load_corpus
from emofuse.experiments.records import FoldRecord
from emofuse.metrics import unweighted_accuracy, weighted_accuracy

__all__ = ["subset_ids", "subset_cell"]


def subset_ids(spec: CorpusSpec) -> dict[str, set[str]]:
    """Per subset the corpus module defines, the ids of its utterances; empty when it defines
    none or its folder is absent (a table rebuilt from results alone)."""
    subsets = getattr(CORPORA.get(spec.name), "SUBSETS", {})
    if not subsets or not Path(spec.root).expanduser().is_dir():
        return {}
    utterances = load_corpus(spec.name, spec.root)
    return {name: {u.id for u in utterances if belongs(u)} for name, belongs in subsets.items()}


def subset_cell(records: Sequence[FoldRecord], ids: set[str]) -> dict | None:
    """UA and WA (mean and std over the folds with any such clip) of ``records``' test
    predictions whose id is in ``ids``; None when no fold has one."""
    ua, wa, clips = [], [], 0
    for record in records:
        kept = [p for p in record.predictions if p.id in ids]
        if not kept:
            continue
        labels = np.array([p.label for p in kept])
        predicted = np.array([int(np.argmax(p.posteriors)) for p in kept])
        ua.append(unweighted_accuracy(labels, predicted))
        wa.append(weighted_accuracy(labels, predicted))
        clips += len(kept)
    if not ua:
        return None
    return {"ua_mean": float(np.mean(ua)), "ua_std": float(np.std(ua)),
            "wa_mean": float(np.mean(wa)), "wa_std": float(np.std(wa)),
            "n": len(ua), "clips": clips}  # fmt: skip
