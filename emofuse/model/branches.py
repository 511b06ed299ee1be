"""Branches: one per feature, each mapping its frames to ``D``-wide steps at a quarter of
its frame rate. ``BranchSpec`` names which branch a feature gets; :func:`make_branch` builds it.

- ``conv1d`` (:class:`Conv1dBranch`): rows as channels (MFCC, prosody);
- ``conv2d`` (:class:`Conv2dBranch`): rows as the height of an image (log-Mel);
- ``layers`` (:class:`LayerSumBranch`): ``groups`` stacked layers of a pretrained encoder, a
  learned softmax-weighted sum, then a frame-wise MLP, at half the frame rate.

>>> branch = make_branch(BranchSpec("mfcc", "conv1d", in_dims=40, channels=32), 64,
...                      multiscale=True, scale=4)
>>> branch(torch.randn(2, 40, 100), torch.tensor([100, 37])).shape
torch.Size([2, 64, 25])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from emofuse.model.blocks import make_block
from emofuse.signal.functional import lengths_to_mask

__all__ = [
    "BranchSpec",
    "BRANCH_TYPES",
    "Conv1dBranch",
    "Conv2dBranch",
    "IdentityBranch",
    "LayerSumBranch",
    "make_branch",
    "halve",
]


@dataclass(frozen=True)
class BranchSpec:
    """The branch of one input feature: its name (the key of its input), branch type, input rows
    per frame, convolution width and row groups (stacked encoder layers; 1 otherwise)."""

    name: str
    type: str
    in_dims: int
    channels: int
    groups: int = 1

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"branch name must be an identifier, got {self.name!r}")
        if self.type not in BRANCH_TYPES:
            raise ValueError(f"unknown branch type {self.type!r}; known: {sorted(BRANCH_TYPES)}")
        for field in ("in_dims", "channels", "groups"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"branch {self.name!r}: {field} must be a positive integer, "
                                 f"got {value!r}")  # fmt: skip
        if self.in_dims % self.groups:
            raise ValueError(f"branch {self.name!r}: in_dims {self.in_dims} is not divisible "
                             f"by groups {self.groups}")  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)


def halve(lengths: torch.Tensor) -> torch.Tensor:
    """Valid lengths after a stride-2 pool: ``ceil(len / 2)``."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


def _max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling of non-negative ``(B, C, F, T)`` with even ``T``; an odd ``F`` rounds up.

    Same result as ``nn.MaxPool2d(2, ceil_mode=True)`` on such inputs, several times faster on CPU
    (and plain slicing for ONNX).

    >>> x = torch.rand(2, 3, 5, 6)
    >>> torch.equal(_max_pool_2x2(x), nn.MaxPool2d(2, ceil_mode=True)(x))
    True
    """
    if x.shape[2] % 2:
        x = F.pad(x, (0, 0, 0, 1))  # zero row: a no-op for the max of non-negative values
    top = torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])  # (B, C, F/2, T/2)
    bottom = torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2])  # (B, C, F/2, T/2)
    return torch.maximum(top, bottom)


class Conv1dBranch(nn.Module):
    """Conv1d stem, two residual blocks with a x2 time pooling after each, projection to ``D``.

    Shape: ``(B, in_dims, T), (B,) -> (B, D, T / 4)``; ``T`` must be a multiple of 4.
    """

    time_stride = 4

    def __init__(
        self, in_dims: int, channels: int, d_model: int, *, multiscale: bool, scale: int
    ) -> None:
        super().__init__()
        self.stem = nn.Conv1d(in_dims, channels, 3, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm1d(channels)
        self.act = nn.ReLU()
        self.block1 = make_block(channels, dims=1, multiscale=multiscale, scale=scale)
        self.block2 = make_block(channels, dims=1, multiscale=multiscale, scale=scale)
        self.pool = nn.MaxPool1d(2)
        self.proj = nn.Conv1d(channels, d_model, 1) if channels != d_model else nn.Identity()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = x.shape[-1]
        mask = lengths_to_mask(lengths, T).unsqueeze(1).to(x.dtype)  # (B, 1, T)
        h = self.act(self.stem_norm(self.stem(x))) * mask  # (B, C, T)
        h = self.block1(h, mask)  # (B, C, T)
        h, lengths = self.pool(h), halve(lengths)  # (B, C, T/2)
        mask = lengths_to_mask(lengths, T // 2).unsqueeze(1).to(x.dtype)  # (B, 1, T/2)
        h = self.block2(h, mask)  # (B, C, T/2)
        h, lengths = self.pool(h), halve(lengths)  # (B, C, T/4)
        mask = lengths_to_mask(lengths, T // 4).unsqueeze(1).to(x.dtype)  # (B, 1, T/4)
        return self.proj(h) * mask  # (B, D, T/4)


class Conv2dBranch(nn.Module):
    """Stride-2 Conv2d stem, residual 2D block, 2x2 pooling, residual 2D block; frequency
    flattened and projected to ``D``. Halving before each block (not after, as in the 1D branch)
    keeps every 2D activation off the full-resolution spectrogram, which would dominate the cost
    (a stride-1 stem made training 2.4x slower).

    Shape: ``(B, in_dims, T), (B,) -> (B, D, T / 4)``, the ``in_dims`` rows (e.g. mel bands)
    being the image height; ``T`` must be a multiple of 4.
    """

    time_stride = 4

    def __init__(
        self, in_dims: int, channels: int, d_model: int, *, multiscale: bool, scale: int
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, stride=2, padding=1, bias=False)
        self.stem_norm = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()
        self.block1 = make_block(channels, dims=2, multiscale=multiscale, scale=scale)
        self.block2 = make_block(channels, dims=2, multiscale=multiscale, scale=scale)
        freq_out = ((in_dims + 1) // 2 + 1) // 2  # ceil(ceil(in_dims / 2) / 2)
        self.proj = nn.Linear(channels * freq_out, d_model)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, _, T = x.shape
        h = x.unsqueeze(1)  # (B, 1, F, T), zero past each length
        lengths = halve(lengths)  # a stride-2 stem: ceil(len / 2) valid frames
        mask = lengths_to_mask(lengths, T // 2)[:, None, None, :].to(x.dtype)  # (B, 1, 1, T/2)
        h = self.act(self.stem_norm(self.stem(h))) * mask  # (B, C, F/2, T/2)
        h = self.block1(h, mask)  # (B, C, F/2, T/2)
        h, lengths = _max_pool_2x2(h), halve(lengths)  # (B, C, F/4, T/4)
        mask = lengths_to_mask(lengths, T // 4)[:, None, None, :].to(x.dtype)  # (B, 1, 1, T/4)
        h = self.block2(h, mask)  # (B, C, F/4, T/4)
        h = h.permute(0, 3, 1, 2).flatten(2)  # (B, T/4, C * F/4)
        h = self.proj(h) * mask.squeeze(1).transpose(1, 2)  # (B, T/4, D), padded frames zero
        return h.transpose(1, 2)  # (B, D, T/4)


class LayerSumBranch(nn.Module):
    """Stacked encoder layers -> softmax-weighted layer sum -> frame-wise Linear + GELU ->
    a stride-2 merge of frame pairs to ``D``.

    Shape: ``(B, groups * W, T), (B,) -> (B, D, T / 2)``; ``T`` must be even. The layer weights
    start equal; :attr:`layer_weights` reads them.
    """

    time_stride = 2

    def __init__(
        self, in_dims: int, channels: int, d_model: int, *, groups: int = 1, **_: object
    ) -> None:
        super().__init__()
        self.groups = groups
        self.layer_logits = nn.Parameter(torch.zeros(groups))
        self.proj = nn.Conv1d(in_dims // groups, channels, 1)
        self.act = nn.GELU()
        self.merge = nn.Conv1d(channels, d_model, 2, stride=2)

    @property
    def layer_weights(self) -> torch.Tensor:
        """Softmax weights of the stacked layers, (groups,)."""
        return torch.softmax(self.layer_logits.detach(), dim=0)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, _, T = x.shape
        layers = x.view(B, self.groups, -1, T)  # (B, G, W, T)
        weights = torch.softmax(self.layer_logits, dim=0).view(1, -1, 1, 1).to(x.dtype)
        h = self.act(self.proj((layers * weights).sum(dim=1)))  # (B, C, T)
        lengths = halve(lengths)
        mask = lengths_to_mask(lengths, T // 2).unsqueeze(1).to(x.dtype)  # (B, 1, T/2)
        return self.merge(h) * mask  # (B, D, T/2)


class IdentityBranch(nn.Module):
    """The feature's frames as they come, for heads that read the normalised frames directly
    (statistics pooling and a linear classifier: logistic regression on pooled statistics).

    Shape: ``(B, in_dims, T), (B,) -> (B, in_dims, T)``; ``d_model`` must equal ``in_dims``.
    """

    time_stride = 1

    def __init__(self, in_dims: int, channels: int, d_model: int, **_: object) -> None:
        super().__init__()
        if d_model != in_dims:
            raise ValueError(f"an identity branch passes its {in_dims} rows on: set model "
                             f"d_model to {in_dims}, got {d_model}")  # fmt: skip

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return x


BRANCH_TYPES: dict[str, type[nn.Module]] = {
    "conv1d": Conv1dBranch,
    "conv2d": Conv2dBranch,
    "layers": LayerSumBranch,
    "identity": IdentityBranch,
}


def make_branch(spec: BranchSpec, d_model: int, *, multiscale: bool, scale: int) -> nn.Module:
    """The branch of ``spec``: ``(B, in_dims, T), (B,) -> (B, d_model, T / time_stride)``."""
    if spec.channels % scale:
        raise ValueError(
            f"branch {spec.name!r}: channels ({spec.channels}) must be divisible by scale ({scale})"
        )
    extra = {"groups": spec.groups} if spec.groups != 1 else {}
    return BRANCH_TYPES[spec.type](
        spec.in_dims, spec.channels, d_model, multiscale=multiscale, scale=scale, **extra
    )
