"""The recipe search behind the default model: leave one corpus out over the four shared corpora,
on the frozen Whisper base features (mean and std of each layer's normalised hidden states over
the clip), one row per change.

Each row is scored per clip, adapted to the held-out corpus and adapted per speaker: mean and
worst UA, largest label share, ECE. Needs the feature cache and the degraded copies
(``scripts/degrade_corpus.py``, seeds 0 and 1, into ``runs/degraded/<seed>/<corpus>``).

    python bench/loco4_recipes.py --threads 1    # writes results/loco4/recipes.{json,md}
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import _common as common
import numpy as np
import torch
from loco import CORPORA, REPO

from emofuse.corpora import load_corpus
from emofuse.corpora.labels import apply_task, get_task
from emofuse.device import set_threads
from emofuse.features import feature_spec
from emofuse.metrics import expected_calibration_error, max_share
from emofuse.metrics import unweighted_accuracy as ua
from emofuse.pipeline.cache import FeatureCache
from emofuse.training.linear_head import (
    balanced_weights,
    fit_logistic,
    fit_temperature,
    pooled_moments,
    pooled_statistics,
    utterance_moments,
)
from emofuse.training.speech import SpeechRegions, speech_frames

LAYERS = (1, 2, 3, 4)
WIDTH = 512
PRIOR_SECONDS = 20.0
FRAME_RATE = 50.0


class Data:
    """Per-utterance moments of the Whisper layers (``mean``, ``var``: N x 4 x W; ``frames``)
    with their columns (``labels``, ``corpus``, ``speaker``, ...), as given."""

    def __init__(self, **columns: object) -> None:
        self.__dict__.update(columns)

    def moments(self, index: np.ndarray, layers: list[int]) -> list:
        return [(self.mean[i, layers].ravel(), self.var[i, layers].ravel(), self.frames[i])
                for i in index]  # fmt: skip


def read_moments(roots: dict[str, Path], copy: str = "original", speech: bool = True) -> list:
    """Per clip, the moments of all its frames and (``speech``) of its speech frames only
    (:func:`emofuse.training.speech.speech_frames`), from the feature cache (Whisper layers 1-4,
    computed on a miss): ``[whole]`` or ``[whole, speech]``; speakers are ``copy/corpus/id``."""
    task = get_task("bundled7")
    cache = FeatureCache([feature_spec("whisper", layers=list(LAYERS))], None, "cpu")
    regions = SpeechRegions(cache.root)  # the same regions (and cache) as train.speech_only
    columns: dict[str, list] = {k: [] for k in ("labels", "corpus", "speaker", "place")}
    moments: dict[str, list] = {"whole": [], "speech": []}
    utterances = []
    for corpus, root in roots.items():
        for u in apply_task(load_corpus(corpus, root), task).utterances:
            utterances.append(u)
            frames = cache.get(u.path)["whisper"]
            moments["whole"].append(utterance_moments(frames))
            if speech:
                kept = speech_frames(frames, regions(u.path), FRAME_RATE)
                moments["speech"].append(utterance_moments(kept))
            for key, value in (("labels", task.index(u.label)), ("corpus", corpus),
                               ("speaker", f"{copy}/{corpus}/{u.speaker}"),
                               ("place", u.extras.get("place", ""))):  # fmt: skip
                columns[key].append(value)
    return [
        Data(mean=np.stack([m.reshape(len(LAYERS), WIDTH) for m, _, _ in moments[key]]),
             var=np.stack([v.reshape(len(LAYERS), WIDTH) for _, v, _ in moments[key]]),
             frames=np.array([n for _, _, n in moments[key]]), roots=roots,
             utterances=utterances, **{k: np.array(v) for k, v in columns.items()})
        for key in ("whole", "speech") if moments[key]
    ]  # fmt: skip


def pooled(
    data: Data,
    index: np.ndarray,
    layers: list[int],
    groups: np.ndarray | None,
    prior: tuple | None,
    prior_seconds: float = PRIOR_SECONDS,
) -> np.ndarray:
    """Pooled statistics of ``index``: each group standardised with its own statistics (shrunk
    to ``prior`` by ``prior_seconds`` when given), or all with ``prior`` when ``groups`` is None."""
    moments = data.moments(index, layers)
    if groups is None:
        return np.stack([pooled_statistics(m, *prior[:2]) for m in moments])
    out = np.empty((len(index), 2 * WIDTH * len(layers)))
    for group in np.unique(groups):
        inside = np.flatnonzero(groups == group)
        mean, std, count = pooled_moments([moments[i] for i in inside])
        if prior is not None:
            weight = count / (count + prior_seconds * FRAME_RATE)
            second = weight * (std**2 + mean**2) + (1 - weight) * (prior[1] ** 2 + prior[0] ** 2)
            mean = weight * mean + (1 - weight) * prior[0]
            std = np.sqrt(np.maximum(second - mean**2, 1e-8))
        for i in inside:
            out[i] = pooled_statistics(moments[i], mean, std)
    return out


class MLP:
    """One hidden layer (256, GELU, dropout), AdamW, label smoothing, sample weights."""

    def fit(self, x, labels, weights, n_classes):
        torch.manual_seed(0)
        x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(labels)
        w = torch.tensor(weights, dtype=torch.float32)
        self.center, self.scale = x.mean(0), x.std(0) + 1e-6
        x = (x - self.center) / self.scale
        self.net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(x.shape[1], 256),
                                       torch.nn.GELU(), torch.nn.Dropout(0.5),
                                       torch.nn.Linear(256, n_classes))  # fmt: skip
        optimiser = torch.optim.AdamW(self.net.parameters(), 1e-3, weight_decay=1e-2)
        for _ in range(60):
            for batch in torch.randperm(len(x)).split(128):
                loss = torch.nn.functional.cross_entropy(
                    self.net(x[batch]), y[batch], reduction="none", label_smoothing=0.1
                )
                optimiser.zero_grad()
                (loss * w[batch]).mean().backward()
                optimiser.step()
        self.net.eval()
        return self

    def logits(self, x):
        with torch.no_grad():
            x = (torch.tensor(x, dtype=torch.float32) - self.center) / self.scale
            return self.net(x).numpy()


RECIPES = {
    # name: (layers (0-based into LAYERS), training normalisation, corpus-balanced, head, copies)
    "global statistics, layers 1-3 (the old normalisation)": ([0, 1, 2], "global", False, "lr", 0),
    "+ corpus-balanced weights": ([0, 1, 2], "global", True, "lr", 0),
    "each training corpus standardised by itself": ([0, 1, 2], "corpus", True, "lr", 0),
    "each training speaker standardised by itself": ([0, 1, 2], "speaker", True, "lr", 0),
    "speaker, layers 2-4": ([1, 2, 3], "speaker", True, "lr", 0),
    "speaker, layers 1-4": ([0, 1, 2, 3], "speaker", True, "lr", 0),
    "speaker, small MLP head": ([0, 1, 2], "speaker", True, "mlp", 0),
    "speaker + one degraded copy": ([0, 1, 2], "speaker", True, "lr", 1),
    "speaker + two degraded copies (shipped)": ([0, 1, 2], "speaker", True, "lr", 2),
}


@dataclass(frozen=True)
class Score:
    """One held-out corpus, scored one way: UA, the most-given label's share, ECE raw and after
    the temperature."""

    ua: float
    max_share: float
    ece: float
    ece_temperature: float

    @classmethod
    def of(cls, z: np.ndarray, y: np.ndarray, temperature: float) -> Score:
        raw = torch.softmax(torch.tensor(z), -1).numpy()
        scaled = torch.softmax(torch.tensor(z) / temperature, -1).numpy()
        return cls(ua(y, z.argmax(1)), max_share(z.argmax(1)),
                   expected_calibration_error(raw, y),
                   expected_calibration_error(scaled, y))  # fmt: skip


def summary(per: list[Score]) -> dict:
    """The JSON's record of one way of scoring: per corpus, means, worst UA, largest share."""
    return {
        "per_corpus": {c: asdict(score) for c, score in zip(CORPORA, per, strict=True)},
        "mean_ua": float(np.mean([r.ua for r in per])),
        "worst_ua": float(np.min([r.ua for r in per])),
        "max_share": float(np.max([r.max_share for r in per])),
        "ece": float(np.mean([r.ece for r in per])),
        "ece_temperature": float(np.mean([r.ece_temperature for r in per])),
    }


def trained_head(recipe: tuple, data: list[Data], held: str, c: float):
    """The recipe's head trained without ``held``: a function from features to logits."""
    layers, norm, by_corpus, head, copies = recipe
    xs, ys, corpus_parts = [], [], []
    for d in data[: copies + 1]:
        train = np.flatnonzero(d.corpus != held)
        groups = {"global": None, "corpus": d.corpus, "speaker": d.speaker}[norm]
        prior = pooled_moments(d.moments(train, layers)) if groups is None else None
        xs.append(pooled(d, train, layers, None if groups is None else groups[train], prior))
        ys.append(d.labels[train])
        corpus_parts.append(d.corpus[train])
    x, y, s = np.concatenate(xs), np.concatenate(ys), np.concatenate(corpus_parts)
    n = len(get_task("bundled7").labels)
    strata = s if by_corpus else np.zeros_like(s)  # one stratum: class-balanced only
    if head == "mlp":
        return MLP().fit(x, y, balanced_weights(y, strata), n).logits
    weight, bias = fit_logistic(x, y, strata, n, c)
    return lambda v: v @ weight.T + bias


def evaluate(name: str, data: list[Data], c: float) -> dict:
    """One recipe, each corpus held out in turn, scored alone, corpus- and speaker-adapted."""
    layers, original = RECIPES[name][0], data[0]
    logits = {"plain": [], "corpus": [], "speaker": []}
    labels = [original.labels[original.corpus == held] for held in CORPORA]
    for held in CORPORA:
        predict = trained_head(RECIPES[name], data, held, c)
        test = np.flatnonzero(original.corpus == held)
        prior = pooled_moments(original.moments(np.flatnonzero(original.corpus != held), layers))
        for how, groups in (("plain", None), ("corpus", original.corpus[test]),
                            ("speaker", original.speaker[test])):  # fmt: skip
            logits[how].append(predict(pooled(original, test, layers, groups, prior)))
    temperature = fit_temperature(np.concatenate(logits["plain"]), np.concatenate(labels))
    row = {"recipe": name, "temperature_fitted_on_held_out": round(temperature, 3)}
    for how, zs in logits.items():
        row[how] = summary([Score.of(z, y, temperature) for z, y in zip(zs, labels, strict=True)])
    return row


def render_markdown(results: dict) -> str:
    """The report (the JSON, as written or read back)."""
    rows, command, machine = results["rows"], results["command"], results["machine"]
    cells = []
    for r in rows:
        p, c, s = r["plain"], r["corpus"], r["speaker"]
        cells.append([r["recipe"], f"{100 * p['mean_ua']:.1f}", f"{100 * p['worst_ua']:.1f}",
                      f"{100 * p['max_share']:.0f}", f"{p['ece']:.3f} / {p['ece_temperature']:.3f}",
                      f"{100 * c['mean_ua']:.1f}", f"{100 * s['mean_ua']:.1f}",
                      f"{100 * s['worst_ua']:.1f}", f"{100 * s['max_share']:.0f}"])  # fmt: skip
    table = common.markdown_table(
        ["recipe (each row changes the one above or the speaker row)", "UA % alone (mean)",
         "worst", "top label % (max)", "ECE raw / temperature", "UA % corpus-adapted",
         "UA % speaker-adapted", "worst", "top label %"], cells)  # fmt: skip
    per = rows[-1]
    detail = common.markdown_table(
        ["held-out corpus (shipped recipe)", "UA % alone", "top label %", "UA % corpus-adapted",
         "UA % speaker-adapted"],
        [[k, f"{100 * per['plain']['per_corpus'][k]['ua']:.1f}",
          f"{100 * per['plain']['per_corpus'][k]['max_share']:.0f}",
          f"{100 * per['corpus']['per_corpus'][k]['ua']:.1f}",
          f"{100 * per['speaker']['per_corpus'][k]['ua']:.1f}"] for k in CORPORA])  # fmt: skip
    return (f"# Recipe search, leave one corpus out over {', '.join(CORPORA)}\n\n"
            "Frozen Whisper base, mean and std of each layer's normalised hidden states, "
            "logistic regression (C 0.001) unless the row says otherwise; features of the "
            "whole clip (no VAD). UA over the classes each held-out corpus has; chance is "
            "14-20 %.\n\n"
            f"{table}\n\n{detail}\n\nReproduce: `{command}`. Machine: "
            f"{machine.get('cpu_model')}, {machine.get('usable_cores')} cores.\n")  # fmt: skip


def add_data_args(parser: argparse.ArgumentParser) -> None:
    """Where the corpora, their degraded copies and the results are; C; threads."""
    parser.add_argument("--corpora-root", default=str(common.CORPORA))
    parser.add_argument("--degraded", default=str(REPO / "runs" / "degraded"))
    parser.add_argument("--out", default=str(REPO / "results" / "loco4"))
    parser.add_argument("--c", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)


def load_data(args: argparse.Namespace, copies: int = 2) -> list[Data]:
    """The original corpora, then ``copies`` of their degraded copies (seeds 0 and 1)."""
    data = read_moments({c: Path(args.corpora_root) / c for c in CORPORA}, speech=False)
    for seed in range(copies):
        roots = {c: Path(args.degraded) / str(seed) / c for c in CORPORA}
        missing = [str(r) for r in roots.values() if not r.is_dir()]
        if missing:
            raise SystemExit(
                f"degraded copies missing: {missing}; make them with "
                "scripts/degrade_corpus.py (see bench/loco4_recipes.py)"
            )
        data += read_moments(roots, f"degraded{seed}", speech=False)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_args(parser)
    args = parser.parse_args()
    set_threads(args.threads)
    began = time.perf_counter()
    data = load_data(args)
    rows = []
    for name in RECIPES:
        rows.append(evaluate(name, data, args.c))
        p, s = rows[-1]["plain"], rows[-1]["speaker"]
        print(f"{name}: alone {100 * p['mean_ua']:.1f} (worst {100 * p['worst_ua']:.1f}), "
              f"speaker-adapted {100 * s['mean_ua']:.1f}", flush=True)  # fmt: skip
    command = common.command_line()
    machine = common.machine_info()
    result = {"rows": rows, "command": command, "machine": machine,
              "seconds": round(time.perf_counter() - began)}  # fmt: skip
    common.write_results("recipes", result, render_markdown(result), Path(args.out))


if __name__ == "__main__":
    main()
