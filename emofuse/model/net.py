"""The multi-scale, multi-feature cross-attention emotion model (Li & Zhang, 2025) and its config.

Pipeline (``B`` batch; feature ``s`` has ``T_s`` frames; ``T' = ceil(T_s / 4)``, ``D = d_model``)::

    feature s (B, dims_s, T_s) -> its branch (``BranchSpec``; conv1d for MFCC and prosody,
        conv2d for log-Mel, each with residual multi-scale blocks) -> (B, D, T')
    fusion over the N features (cross-attention, each feature attending the others; or
        concat/sum) -> (B, T', N D) (D for sum); a single feature skips fusion
    BiLSTM (packed by lengths) -> (B, T', 2H) -> masked mean/attention pooling -> (B, 2H)
    dropout -> Linear -> logits (B, n_classes)

The paper's network is two features, MFCC (conv1d) and log-Mel (conv2d): :data:`PAPER_BRANCHES`.
Each feature's time is padded internally to a multiple of its branch's stride; valid lengths
after the branch are ``ceil(len / stride)``. Features must arrive on one time grid after their
branches (the same duration); the fused valid length is the shortest of them. Padding is masked
everywhere (re-zeroed after every conv block, attention ``key_padding_mask``, packed BiLSTM,
masked pooling), so in eval mode an utterance gives the same logits alone as in a padded batch.

Imports only torch.

>>> model = EmotionNet(ModelConfig()).eval()
>>> lengths = torch.tensor([300, 123])
>>> logits = model({"mfcc": (torch.randn(2, 40, 300), lengths),
...                 "logmel": (torch.randn(2, 64, 300), lengths)})
>>> logits.shape
torch.Size([2, 4])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from emofuse.model.branches import BranchSpec, make_branch
from emofuse.model.fusion import FUSIONS, make_fusion
from emofuse.model.temporal import (
    AttentionPooling,
    BiLSTM,
    FrameProjection,
    MeanPooling,
    StatsPooling,
    exporting,
)
from emofuse.signal.functional import lengths_to_mask

__all__ = ["EmotionNet", "ModelConfig", "PAPER_BRANCHES", "FeatureInputs"]

TEMPORALS = ("bilstm", "none")
POOLINGS = ("mean", "attention", "stats")
PAPER_BRANCHES = (
    BranchSpec("mfcc", "conv1d", in_dims=40, channels=128),
    BranchSpec("logmel", "conv2d", in_dims=64, channels=16),
)
# feature name -> (frames (B, dims, T_s), valid frame counts (B,))
FeatureInputs = Mapping[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class ModelConfig:
    """Hyperparameters of :class:`EmotionNet` shared by every feature; plain values only, so it
    round-trips YAML/JSON. The features' own branches are :class:`BranchSpec`\\ s.

    Attributes:
        n_classes: number of output classes.
        d_model: width ``D`` of each branch output and of the cross-attention.
        n_heads: attention heads per cross-attention direction.
        scale: multi-scale groups per block (branch channels must be divisible by it).
        lstm_hidden: BiLSTM hidden size per direction.
        dropout: dropout before the classifier and inside the cross-attention.
        pooling: ``"mean"``, ``"attention"`` or ``"stats"`` (mean and std) over valid frames.
        multiscale: Res2Net-style blocks (True) or plain residual blocks of the same width.
        fusion: ``"cross_attention"``, ``"concat"`` or ``"sum"`` (with two or more features).
        temporal: ``"bilstm"`` or ``"none"`` (pool the fused sequence directly).

    >>> ModelConfig(fusion="concat").fusion
    'concat'
    >>> ModelConfig(d_model=100, n_heads=3)
    Traceback (most recent call last):
    ...
    ValueError: d_model (100) must be divisible by n_heads (3)
    """

    n_classes: int = 4
    d_model: int = 128
    n_heads: int = 4
    scale: int = 4
    lstm_hidden: int = 128
    dropout: float = 0.2
    pooling: str = "mean"
    multiscale: bool = True
    fusion: str = "cross_attention"
    temporal: str = "bilstm"

    def __post_init__(self) -> None:
        for name in ("d_model", "n_heads", "scale", "lstm_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.n_classes, int) or isinstance(self.n_classes, bool):
            raise ValueError(f"n_classes must be an integer >= 2, got {self.n_classes!r}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {self.n_classes!r}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.multiscale, bool):
            raise ValueError(f"multiscale must be true or false, got {self.multiscale!r}")
        for name, allowed in (("pooling", POOLINGS), ("fusion", FUSIONS), ("temporal", TEMPORALS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {list(allowed)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Build from a plain mapping (e.g. parsed YAML); unknown keys raise ``ValueError``.

        >>> ModelConfig.from_dict({"fusion": "sum"}).fusion
        'sum'
        >>> ModelConfig.from_dict({"fusoin": "sum"})
        Traceback (most recent call last):
        ...
        ValueError: unknown ModelConfig key(s): ['fusoin']; known: ...
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown ModelConfig key(s): {unknown}; known: {known}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of all fields (inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)


class EmotionNet(nn.Module):
    """Speech emotion classifier over N features; see the module docstring.

    Args:
        config: hyperparameters and ablation switches; defaults to ``ModelConfig()``.
        branches: one :class:`BranchSpec` per input feature, in fusion order; default: the
            paper's MFCC and log-Mel branches.

    :meth:`forward` takes a mapping ``name -> (frames (B, in_dims, T_s), lengths (B,))``
    (normalised; frames beyond each length are zeroed here anyway) with an entry for every
    branch, and returns logits (B, n_classes).
    """

    def __init__(
        self, config: ModelConfig | None = None, branches: Sequence[BranchSpec] = PAPER_BRANCHES
    ) -> None:
        super().__init__()
        cfg = config if config is not None else ModelConfig()
        branches = tuple(branches)
        names = [b.name for b in branches]
        if not branches or len(set(names)) != len(names):
            raise ValueError(f"need one or more branches with distinct names, got {names}")
        self.config = cfg
        self.branch_specs = branches
        D = cfg.d_model
        self.branches = nn.ModuleDict(
            {
                b.name: make_branch(b, D, multiscale=cfg.multiscale, scale=cfg.scale)
                for b in branches
            }
        )
        self.fusion = None
        width = D
        if len(branches) > 1:
            self.fusion = make_fusion(
                cfg.fusion, D, names, n_heads=cfg.n_heads, dropout=cfg.dropout
            )
            width = self.fusion.out_dim
        if cfg.temporal == "bilstm":
            self.temporal = BiLSTM(width, cfg.lstm_hidden)
        else:
            self.temporal = FrameProjection(width, 2 * cfg.lstm_hidden)
        width = self.temporal.out_dim
        if cfg.pooling == "stats":
            self.pooling, width = StatsPooling(), 2 * width
        else:
            self.pooling = MeanPooling() if cfg.pooling == "mean" else AttentionPooling(width)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(width, cfg.n_classes)

    def forward(self, features: FeatureInputs) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for ``features``: name -> (frames (B, dims, T), lengths)."""
        return self.classifier(self.dropout(self.embed(features)))  # (B, n_classes)

    def embed(self, features: FeatureInputs) -> torch.Tensor:
        """The pooled utterance representation the classifier reads, ``(B, embedding_dim)``."""
        if not exporting():  # data-dependent checks cannot be traced
            self._check_inputs(features)
        outputs, out_lengths = [], []
        for name, branch in self.branches.items():
            x, lengths = features[name]
            lengths = lengths.to(device=x.device, dtype=torch.long)  # (B,)
            T, stride = x.shape[-1], branch.time_stride
            pad = (-T) % stride
            mask = lengths_to_mask(lengths, T + pad).unsqueeze(1)  # (B, 1, T + pad)
            x = F.pad(x, (0, pad)) * mask  # (B, dims, T + pad), zero beyond lengths
            outputs.append(branch(x, lengths).transpose(1, 2))  # (B, T', D)
            out_lengths.append(torch.div(lengths + stride - 1, stride, rounding_mode="floor"))
        steps = max(o.shape[1] for o in outputs)
        outputs = [F.pad(o, (0, 0, 0, steps - o.shape[1])) for o in outputs]  # (B, T', D) each
        lengths = out_lengths[0]
        for other in out_lengths[1:]:
            lengths = torch.minimum(lengths, other)  # (B,): the shortest feature's valid steps
        mask = lengths_to_mask(lengths, steps)  # (B, T')
        h = outputs[0] if self.fusion is None else self.fusion(outputs, mask)  # (B, T', N D)
        h = self.temporal(h, lengths, mask)  # (B, T', 2H)
        return self.pooling(h, mask)  # (B, 2H)

    @property
    def embedding_dim(self) -> int:
        """Width of :meth:`embed`'s output."""
        return self.classifier.in_features

    def _check_inputs(self, features: FeatureInputs) -> None:
        missing = [b.name for b in self.branch_specs if b.name not in features]
        if missing:
            raise ValueError(f"missing input feature(s) {missing}; the model takes "
                             f"{[b.name for b in self.branch_specs]}")  # fmt: skip
        for spec in self.branch_specs:
            x, lengths = features[spec.name]
            if x.dim() != 3 or x.shape[1] != spec.in_dims:
                raise ValueError(f"feature {spec.name!r} must have shape (batch, {spec.in_dims}, "
                                 f"time), got {tuple(x.shape)}")  # fmt: skip
            B, T = x.shape[0], x.shape[2]
            if lengths.shape != (B,):
                raise ValueError(f"feature {spec.name!r}: lengths must have shape ({B},), got "
                                 f"{tuple(lengths.shape)}")  # fmt: skip
            if bool((lengths < 1).any()) or bool((lengths > T).any()):
                raise ValueError(f"feature {spec.name!r}: lengths must lie in [1, {T}], got "
                                 f"{lengths.tolist()}")  # fmt: skip

    def num_parameters(self, *, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those with ``requires_grad``).

        >>> 300_000 <= EmotionNet().num_parameters() <= 2_000_000
        True
        """
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def summary(self) -> str:
        """Human-readable listing: the config, each stage and its layers, parameter counts."""
        settings = ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
        inputs = ", ".join(f"{b.name}: {b.type} {b.in_dims}x{b.channels}"
                           for b in self.branch_specs)  # fmt: skip
        lines = [f"EmotionNet({settings})", f"features: {inputs}",
                 f"{'stage / layer':<32}{'type':<24}{'params':>10}"]  # fmt: skip
        for name, child in self.named_children():
            lines.append(f"{name:<32}{type(child).__name__:<24}{_count(child):>10,}")
            for sub_name, sub in child.named_children():
                n = _count(sub)
                if n:
                    lines.append(f"  {sub_name:<30}{type(sub).__name__:<24}{n:>10,}")
        lines.append(f"{'total':<56}{self.num_parameters():>10,}")
        return "\n".join(lines)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
