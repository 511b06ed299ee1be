"""The classic baseline: openSMILE eGeMAPSv02 functionals + RBF SVM.

Per fold: functionals standardised with training-side statistics, an RBF SVM whose C and gamma
are chosen by speaker-grouped inner cross-validation on the training-side speakers only
(scored by UA, i.e. balanced accuracy), then refit on the whole training side. The fold
records hold its decisions (one-hot posteriors) and, per prediction, Platt-scaled class
``probabilities`` that :mod:`emofuse.experiments.ensemble` averages with the network's
posteriors. The fold's validation speakers join the training side: the SVM needs no early
stopping, and the test speakers stay unseen. Needs ``pip install 'emofuse[baseline]'``
(opensmile, scikit-learn), imported lazily. The cross-validation harness runs it as the system
``egemaps-svm`` (:mod:`emofuse.experiments.systems`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emofuse.corpora import Utterance
from emofuse.experiments.records import FoldRecord
from emofuse.experiments.scoring import rounded, scored_record
from emofuse.experiments.splits import speaker_key
from emofuse.pipeline.cache import cached_array, default_cache_dir, file_key
from emofuse.progress import progress as progress_of

if TYPE_CHECKING:
    from emofuse.experiments.loading import Experiment

__all__ = ["REQUIRES", "egemaps_features", "run_svm_fold", "C_GRID", "GAMMA_GRID"]

REQUIRES = ("opensmile", "sklearn")  # imported lazily

C_GRID = (0.1, 1.0, 10.0, 100.0)
GAMMA_GRID = ("scale", 0.001, 0.01, 0.1)


def egemaps_extractor():
    try:
        import opensmile
    except ImportError:
        raise ImportError(
            "the eGeMAPS baseline needs opensmile: pip install 'emofuse[baseline]'"
        ) from None
    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def egemaps_features(
    utterances: Sequence[Utterance],
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """88 eGeMAPSv02 functionals per utterance, keyed by path, cached on disk by file identity."""
    from emofuse.signal.audio import load_audio

    folder = Path(cache_dir or default_cache_dir()) / "egemaps-v02"
    smile = None

    def functionals(path: Path) -> np.ndarray:  # (88,)
        nonlocal smile
        smile = smile or egemaps_extractor()
        return smile.process_signal(load_audio(path), 16000).to_numpy()[0].astype(np.float32)

    paths = [u.path for u in utterances]
    return {
        str(path): cached_array(
            folder / f"{file_key(Path(path))}.npy", lambda p=path: functionals(p)
        )
        for path in (progress_of(paths, "eGeMAPS") if progress else paths)
    }


def run_svm_fold(experiment: Experiment, index: int, features: dict[str, np.ndarray]) -> FoldRecord:
    """Fit and test the SVM on fold ``index`` of ``experiment``, given every utterance's
    functionals (88,) keyed by path."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    began = time.perf_counter()
    fold = experiment.folds[index]
    task = experiment.task
    train: list[Utterance] = fold.train + fold.val + experiment.extra_train

    def arrays(utts: Sequence[Utterance]) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([features[str(u.path)] for u in utts])
        return x, np.array([task.index(u.label) for u in utts])

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(fold.test)
    groups = np.array(["/".join(speaker_key(u)) for u in train])
    n_groups = len(set(groups))
    model = make_pipeline(StandardScaler(), SVC(kernel="rbf", class_weight="balanced"))
    search = GridSearchCV(
        model,
        {"svc__C": list(C_GRID), "svc__gamma": list(GAMMA_GRID)},
        scoring="balanced_accuracy",
        cv=GroupKFold(n_splits=min(5, n_groups)),
        n_jobs=1,
    )
    search.fit(x_train, y_train, groups=groups)
    # The SVM decides: its posteriors are one-hot decisions, which give its metrics. For
    # ensembles with the network, each prediction also holds class probabilities from the
    # chosen SVM refit with Platt scaling on cross-validated decision values (5-fold, fewer when
    # a class has fewer examples; left out when a class has a single example).
    decisions = np.eye(task.num_classes)[search.predict(x_test)]
    record = scored_record(
        experiment, index, "egemaps-svm", decisions, y_test, [u.id for u in fold.test],
        best_epoch=None, val_ua=None, train_seconds=time.perf_counter() - began, history=[],
        svm_params={k.removeprefix("svc__"): v for k, v in search.best_params_.items()},
        inner_cv_ua=float(search.best_score_),
    )  # fmt: skip
    counts = np.bincount(y_train)
    smallest = int(counts[counts > 0].min())
    if smallest >= 2:
        calibrated = CalibratedClassifierCV(
            search.best_estimator_, method="sigmoid", cv=min(5, smallest), ensemble=False
        ).fit(x_train, y_train)
        probabilities = np.zeros((len(x_test), task.num_classes))
        probabilities[:, calibrated.classes_] = calibrated.predict_proba(x_test)
        for prediction, probs in zip(record.predictions, probabilities, strict=True):
            prediction.probabilities = rounded(probs)
    return record
