"""Tests of emofuse.model: shapes, batch consistency, gradient flow, config validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emofuse.model import (
    ConcatFusion,
    CrossAttentionFusion,
    EmotionNet,
    ModelConfig,
    MultiScaleBlock1d,
    MultiScaleBlock2d,
    PlainBlock1d,
    PlainBlock2d,
    SumFusion,
    lengths_to_mask,
    make_fusion,
)

# Small widths keep the tests fast; the structure is the same as the default model.
SMALL = dict(mfcc_channels=32, logmel_channels=16, d_model=32, n_heads=4, lstm_hidden=16)

ABLATIONS = {
    "default": {},
    "plain_blocks": {"multiscale": False},
    "concat": {"fusion": "concat"},
    "sum": {"fusion": "sum"},
    "mfcc_only": {"branches": "mfcc"},
    "logmel_only": {"branches": "logmel"},
    "no_temporal": {"temporal": "none"},
    "no_temporal_sum": {"temporal": "none", "fusion": "sum"},
    "attention_pool": {"pooling": "attention"},
    "logmel_only_no_temporal_attention": {
        "branches": "logmel",
        "temporal": "none",
        "pooling": "attention",
    },
}


def _inputs(lengths: list[int], T: int | None = None, *, n_mfcc: int = 40, n_mels: int = 64):
    """Random inputs zeroed beyond each length."""
    T = T if T is not None else max(lengths)
    lengths_t = torch.tensor(lengths)
    mask = lengths_to_mask(lengths_t, T).unsqueeze(1)  # (B, 1, T)
    mfcc = torch.randn(len(lengths), n_mfcc, T) * mask
    logmel = torch.randn(len(lengths), n_mels, T) * mask
    return mfcc, logmel, lengths_t


def _randomise_norms(model: nn.Module) -> None:
    """Non-trivial BatchNorm statistics and affine parameters, so eval mode is not an identity."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            elif isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def _model(**overrides) -> EmotionNet:
    torch.manual_seed(0)
    model = EmotionNet(ModelConfig(**{**SMALL, **overrides}))
    _randomise_norms(model)
    return model


# --------------------------------------------------------------------------- shapes


def test_default_model_shape_and_size():
    model = EmotionNet().eval()
    assert 300_000 <= model.num_parameters() <= 2_000_000
    assert model.num_parameters(trainable_only=True) == model.num_parameters()
    mfcc, logmel, lengths = _inputs([301, 250, 17])
    with torch.no_grad():
        logits = model(mfcc, logmel, lengths)
    assert logits.shape == (3, 4)
    assert torch.isfinite(logits).all()
    text = model.summary()
    assert "total" in text and f"{model.num_parameters():,}" in text
    assert "fusion=cross_attention" in text


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_shapes(name):
    model = _model(n_classes=7, **ABLATIONS[name]).eval()
    mfcc, logmel, lengths = _inputs([45, 30])
    with torch.no_grad():
        logits = model(mfcc, logmel, lengths)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_default_branch_outputs_are_quarter_rate():
    model = EmotionNet().eval()
    mfcc, logmel, lengths = _inputs([400, 123])
    with torch.no_grad():
        a = model.mfcc_branch(mfcc, lengths)
        b = model.logmel_branch(logmel, lengths)
    assert a.shape == b.shape == (2, 128, 100)
    # frames past ceil(123 / 4) = 31 are zero
    assert a[1, :, 31:].abs().max() == 0 and b[1, :, 31:].abs().max() == 0
    assert a[1, :, 30].abs().max() > 0


def test_single_branch_accepts_none_for_the_other_input():
    model = _model(branches="mfcc").eval()
    mfcc, _, lengths = _inputs([20, 9])
    assert model(mfcc, None, lengths).shape == (2, 4)
    assert model.logmel_branch is None and model.fusion is None


@pytest.mark.parametrize("T", range(1, 9))
def test_very_short_inputs(T):
    model = _model().eval()
    mfcc, logmel, lengths = _inputs([T, max(1, T // 2)], T)
    with torch.no_grad():
        logits = model(mfcc, logmel, lengths)
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_lengths_default_to_full_and_are_checked():
    model = _model().eval()
    mfcc, logmel, _ = _inputs([10, 10])
    with torch.no_grad():
        full = model(mfcc, logmel, torch.tensor([10, 10]))
        assert torch.allclose(model(mfcc, logmel), full)
    with pytest.raises(ValueError, match="lengths"):
        model(mfcc, logmel, torch.tensor([11, 3]))
    with pytest.raises(ValueError, match="lengths"):
        model(mfcc, logmel, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="mfcc"):
        model(mfcc[:, :20], logmel, torch.tensor([10, 10]))


# --------------------------------------------------------------------------- batch consistency


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_batch_consistency(name):
    """In eval mode one utterance alone gives the same logits as its slice of a padded batch."""
    model = _model(**ABLATIONS[name]).eval()
    torch.manual_seed(1)
    lengths = [37, 58, 13, 6]  # longer and shorter neighbours; none a multiple of 4
    mfcc, logmel, lengths_t = _inputs(lengths)
    with torch.no_grad():
        batch = model(mfcc, logmel, lengths_t)
        for i, n in enumerate(lengths):
            alone = model(mfcc[i : i + 1, :, :n], logmel[i : i + 1, :, :n], lengths_t[i : i + 1])
            torch.testing.assert_close(alone, batch[i : i + 1], atol=1e-5, rtol=0)


def test_padding_content_is_ignored():
    """Garbage beyond the lengths (inputs not zeroed by the caller) does not change the logits."""
    model = _model().eval()
    mfcc, logmel, lengths = _inputs([40, 23])
    noisy_mfcc, noisy_logmel = mfcc.clone(), logmel.clone()
    noisy_mfcc[1, :, 23:] = 5.0
    noisy_logmel[1, :, 23:] = -5.0
    with torch.no_grad():
        torch.testing.assert_close(
            model(noisy_mfcc, noisy_logmel, lengths), model(mfcc, logmel, lengths)
        )


def test_blocks_keep_padding_zero():
    torch.manual_seed(0)
    mask1 = lengths_to_mask(torch.tensor([10, 4]), 12).unsqueeze(1).float()
    mask2 = mask1.unsqueeze(1)
    for block, x, mask in (
        (MultiScaleBlock1d(16), torch.randn(2, 16, 12), mask1),
        (PlainBlock1d(16), torch.randn(2, 16, 12), mask1),
        (MultiScaleBlock2d(8), torch.randn(2, 8, 5, 12), mask2),
        (PlainBlock2d(8), torch.randn(2, 8, 5, 12), mask2),
    ):
        _randomise_norms(block)
        out = block.eval()(x * mask, mask)
        assert out.shape == x.shape
        assert out[1, ..., 4:].abs().max() == 0


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_gradients_reach_every_parameter(name):
    model = _model(**ABLATIONS[name]).train()
    torch.manual_seed(2)
    mfcc, logmel, lengths = _inputs([33, 21, 50, 9])
    logits = model(mfcc, logmel, lengths)
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().max() > 0, pname


def test_default_model_gradients():
    torch.manual_seed(0)
    model = EmotionNet().train()
    mfcc, logmel, lengths = _inputs([90, 61])
    model(mfcc, logmel, lengths).logsumexp(dim=1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().max() > 0, pname


# --------------------------------------------------------------------------- fusion modules


def test_fusion_modules():
    a, b = torch.randn(2, 7, 32), torch.randn(2, 7, 32)
    mask = lengths_to_mask(torch.tensor([7, 3]), 7)
    cross = CrossAttentionFusion(32, n_heads=4).eval()
    for fusion, width in ((cross, 64), (ConcatFusion(32), 64), (SumFusion(32), 32)):
        out = fusion(a, b, mask)
        assert out.shape == (2, 7, width) and fusion.out_dim == width
        assert out[1, 3:].abs().max() == 0
    # keys beyond the length do not matter
    b2 = b.clone()
    b2[1, 3:] = 100.0
    torch.testing.assert_close(cross(a, b2, mask), cross(a, b, mask))
    with pytest.raises(ValueError, match="fusion"):
        make_fusion("gated", 32)
    with pytest.raises(ValueError, match="divisible"):
        CrossAttentionFusion(30, n_heads=4)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"fusion": "gated"}, "fusion"),
        ({"branches": "all"}, "branches"),
        ({"temporal": "gru"}, "temporal"),
        ({"pooling": "max"}, "pooling"),
        ({"d_model": 130, "n_heads": 4}, "divisible by n_heads"),
        ({"mfcc_channels": 30}, "mfcc_channels .*divisible by scale"),
        ({"logmel_channels": 18}, "logmel_channels .*divisible by scale"),
        ({"d_model": 0}, "d_model must be a positive integer"),
        ({"lstm_hidden": -4}, "lstm_hidden"),
        ({"n_mels": 64.0}, "n_mels"),
        ({"scale": 0}, "scale"),
        ({"n_classes": 1}, "n_classes"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"dropout": "0.1"}, "dropout"),
        ({"multiscale": "yes"}, "multiscale"),
    ],
)
def test_config_rejects_bad_values(overrides, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**overrides)


def test_config_dict_round_trip():
    cfg = ModelConfig(fusion="concat", multiscale=False, dropout=0.1)
    d = cfg.to_dict()
    assert d["fusion"] == "concat" and d["multiscale"] is False
    assert ModelConfig.from_dict(d) == cfg
    assert ModelConfig.from_dict({}) == ModelConfig()


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"\['fusoin', 'heads'\]"):
        ModelConfig.from_dict({"fusoin": "sum", "heads": 4, "fusion": "sum"})


def test_unpacked_bilstm_equals_packed():
    """The export path of the BiLSTM (no packing) gives the packed result."""
    model = _model().eval()
    x = torch.randn(3, 11, model.temporal.lstm.input_size)
    lengths = torch.tensor([11, 4, 1])
    mask = lengths_to_mask(lengths, 11)
    x = x * mask.unsqueeze(-1)
    with torch.no_grad():
        packed = model.temporal(x, lengths, mask)
        unpacked = model.temporal.forward_unpacked(x, lengths, mask)
    torch.testing.assert_close(unpacked, packed, atol=1e-6, rtol=0)
