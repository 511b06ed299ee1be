"""Figures for results (matplotlib, imported lazily: ``pip install emofuse[plot]``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["plot_confusion", "plot_learning_curves", "plot_timeline", "plot_claims_forest"]

CORPUS_MARKERS = "os^vPX*h"  # one per corpus, in order of appearance (not "D": the pooled mean)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'emofuse[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: str | os.PathLike) -> None:
    """Row-normalised confusion matrix (true rows, predicted columns) with counts."""
    plt = _pyplot()
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.7 * len(labels)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            color = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]}\n{100 * share[i, j]:.0f}%", ha="center", va="center",
                    fontsize=8, color=color)  # fmt: skip
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_learning_curves(records: Sequence[dict], path: str | os.PathLike) -> None:
    """Training loss and validation UA per epoch, one line per fold."""
    plt = _pyplot()
    fig, (loss_ax, ua_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for record in records:
        epochs = [h["epoch"] for h in record["history"]]
        loss_ax.plot(epochs, [h["train_loss"] for h in record["history"]], lw=1)
        ua_ax.plot(epochs, [100 * h["val_ua"] for h in record["history"]], lw=1,
                   label=f"fold {record['fold']}")  # fmt: skip
    loss_ax.set(xlabel="epoch", ylabel="training loss")
    ua_ax.set(xlabel="epoch", ylabel="validation UA %")
    if len(records) <= 12:
        ua_ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_timeline(segments: Sequence, labels: Sequence[str], path: str | os.PathLike) -> None:
    """Probability of each label over time, segments without speech shaded grey.

    ``segments``: :class:`emofuse.inference.recognizer.Segment` objects, contiguous and in order.
    """
    if not segments:
        raise ValueError("no segments to plot")
    plt = _pyplot()
    edges = [s.start for s in segments] + [segments[-1].end]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for name in labels:
        ax.stairs([s.probabilities.get(name, 0.0) for s in segments], edges, label=name, lw=1.2)
    for i, s in enumerate(s for s in segments if s.silent):
        ax.axvspan(s.start, s.end, color="0.85", lw=0, label="no speech" if i == 0 else None)
    ax.set(xlabel="time (s)", ylabel="probability", xlim=(edges[0], edges[-1]), ylim=(0, 1))
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_claims_forest(
    claims: Sequence[dict], pooled: Sequence[dict], path: str | os.PathLike
) -> None:
    """Forest plot of the claims (``table.json``'s ``claims`` and ``pooled``), in points.

    One row per claim comparison of ``pooled``, top to bottom: per corpus its mean UA
    difference with its 95% bootstrap interval (a marker and colour per corpus; hollow when the
    corpus is left out of the pooled mean), below them the fixed-effect mean (grey diamond: these
    corpora) and the random-effects mean (black diamond: a new corpus) with their 95% intervals
    (when pooled), and both verdicts at the right; a vertical line at 0.
    """
    plt = _pyplot()
    corpora = list(dict.fromkeys(c["corpus"] for c in claims))
    style = {c: (CORPUS_MARKERS[i % len(CORPUS_MARKERS)], plt.get_cmap("tab10")(i % 10))
             for i, c in enumerate(corpora)}  # fmt: skip
    step = 0.4 / len(corpora)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.9 * len(pooled)))
    for row, entry in enumerate(pooled):
        y = len(pooled) - 1 - row
        key = (entry["claim"], entry["system"], entry["baseline"])
        for c in claims:
            if (c["claim"], c["system"], c["baseline"]) != key:
                continue
            i = corpora.index(c["corpus"])
            mean, low, high = (100 * c[k] for k in ("mean_diff", "ci_low", "ci_high"))
            marker, colour = style[c["corpus"]]
            face = colour if c["corpus"] in entry["corpora"] else "white"
            ax.errorbar(mean, y + 0.4 - i * step, xerr=[[mean - low], [high - mean]],
                        fmt=marker, color=colour, mfc=face, ms=6, capsize=3, lw=1.2)  # fmt: skip
        if entry["mean_diff"] is not None:
            for centre, keys, colour in (
                (y - 0.13, ("fixed_mean", "fixed_ci_low", "fixed_ci_high"), "0.55"),
                (y - 0.35, ("mean_diff", "ci_low", "ci_high"), "black"),
            ):
                mean, low, high = (100 * entry[k] for k in keys)
                ax.fill([low, mean, high, mean], [centre, centre + 0.09, centre, centre - 0.09],
                        color=colour)  # fmt: skip
        ax.text(1.01, y, f"these corpora: {entry['fixed_verdict']}\n"
                f"a new corpus: {entry['verdict']}", transform=ax.get_yaxis_transform(),
                va="center", fontsize=8)  # fmt: skip
        ax.axhline(y - 0.5, color="0.85", lw=0.8)
    ax.axvline(0, color="0.3", lw=1, ls="--")
    labels = [f"({p['claim']}) {p['system']} vs {p['baseline']}\n{p['statement']}"
              for p in reversed(pooled)]  # fmt: skip
    ax.set_yticks(range(len(pooled)), labels, fontsize=8)
    ax.set(xlabel="UA difference (points)", ylim=(-0.5, len(pooled) - 0.5))
    handles = [ax.plot([], [], style[c][0], color=style[c][1], label=c)[0] for c in corpora]
    handles.append(ax.plot([], [], "D", color="0.55", label="these corpora (fixed effect)")[0])
    handles.append(ax.plot([], [], "D", color="black", label="a new corpus (random effects)")[0])
    if any(entry["left_out"] for entry in pooled):
        hollow = ax.plot([], [], "o", color="0.4", mfc="white", label="left out of pooling")
        handles.append(hollow[0])
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=len(handles),
              frameon=False, fontsize=8)  # fmt: skip
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
