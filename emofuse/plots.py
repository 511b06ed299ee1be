"""Figures for results (matplotlib, imported lazily: ``pip install emofuse[plot]``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

__all__ = ["plot_confusion", "plot_learning_curves", "plot_timeline"]


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
