"""The temporal stage over the fused sequence, and pooling over its valid frames.

- :class:`BiLSTM` (packed by lengths; an unpacked twin for export) or :class:`FrameProjection`
  (the ``temporal: none`` ablation): ``(B, T, I), (B,), (B, T) -> (B, T, out_dim)``;
- :class:`MeanPooling` / :class:`AttentionPooling`: ``(B, T, H), (B, T) -> (B, H)``;
  :class:`StatsPooling` (mean and standard deviation): ``-> (B, 2H)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from emofuse.signal.functional import exporting

__all__ = [
    "BiLSTM",
    "FrameProjection",
    "MeanPooling",
    "StatsPooling",
    "AttentionPooling",
]


def _reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each item's first ``lengths[b]`` frames, leaving its padding in place.

    >>> _reverse_within_lengths(torch.arange(4.0).view(1, 4, 1), torch.tensor([3])).flatten()
    tensor([2., 1., 0., 3.])
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    index = lengths.unsqueeze(1) - 1 - steps  # (B, T)
    index = torch.where(index >= 0, index, steps)  # padded frames stay where they are
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # (B, T, H)


class BiLSTM(nn.Module):
    """Bidirectional LSTM over packed sequences. Shape: ``(B, T, I), (B,) -> (B, T, 2H)``.

    Packing does not survive ``torch.export`` (the ONNX exporter), so while tracing or compiling
    the same result is computed without packing: the forward direction runs over the padded
    sequence (padding only follows the valid frames), the backward direction over each item
    reversed within its length. Padded output frames are zero on both paths.
    """

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, batch_first=True, bidirectional=True)
        self.out_dim = 2 * hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if exporting():
            return self.forward_unpacked(x, lengths, mask)
        packed = pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )  # only the valid frames of each item
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # (B, T, 2H)
        return out

    def forward_unpacked(
        self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Same result as :meth:`forward` without packing (used for export)."""
        lstm = self.lstm
        B, hidden = x.shape[0], lstm.hidden_size
        state = x.new_zeros(1, B, hidden)
        forward_weights = [lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
        backward_weights = [
            lstm.weight_ih_l0_reverse,
            lstm.weight_hh_l0_reverse,
            lstm.bias_ih_l0_reverse,
            lstm.bias_hh_l0_reverse,
        ]
        # torch.lstm(x, (h0, c0), weights, has_biases, layers, dropout, train, bidir, batch_first)
        fwd = torch.lstm(x, (state, state), forward_weights, True, 1, 0.0, False, False, True)[0]
        x_rev = _reverse_within_lengths(x, lengths)  # (B, T, I)
        bwd = torch.lstm(x_rev, (state, state), backward_weights, True, 1, 0.0, False, False, True)
        bwd = _reverse_within_lengths(bwd[0], lengths)  # (B, T, H)
        out = torch.cat([fwd, bwd], dim=-1)  # (B, T, 2H)
        return out * mask.unsqueeze(-1).to(out.dtype)  # padded frames zero, as after packing


class FrameProjection(nn.Module):
    """The ``temporal: none`` stage: a frame-wise Linear to ``out_dim`` when the width differs.

    Shape: ``(B, T, I), (B,), (B, T) -> (B, T, out_dim)``, padded frames zero.
    """

    def __init__(self, input_size: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(input_size, out_dim) if input_size != out_dim else nn.Identity()
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.proj(x) * mask.unsqueeze(-1).to(x.dtype)  # (B, T, out_dim)


class MeanPooling(nn.Module):
    """Mean over valid frames. Shape: ``(B, T, H), (B, T) -> (B, H)``."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)  # (B, H)


class StatsPooling(nn.Module):
    """Mean and standard deviation over valid frames, concatenated (x-vector statistics
    pooling). Shape: ``(B, T, H), (B, T) -> (B, 2H)``."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        count = m.sum(dim=1).clamp(min=1.0)  # (B, 1)
        mean = (x * m).sum(dim=1) / count  # (B, H)
        var = (((x - mean.unsqueeze(1)) * m) ** 2).sum(dim=1) / count  # (B, H)
        return torch.cat([mean, (var + 1e-6).sqrt()], dim=-1)  # (B, 2H)


class AttentionPooling(nn.Module):
    """Additive attention over valid frames. Shape: ``(B, T, H), (B, T) -> (B, H)``.

    The final score layer has no bias: softmax ignores a constant shift, so it would get no
    gradient.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1, bias=False)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.score(x).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # padded frames out
        weights = torch.softmax(scores, dim=1)  # (B, T)
        return torch.einsum("bt,bth->bh", weights, x)  # (B, H)
