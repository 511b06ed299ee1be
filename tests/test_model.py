"""Tests of emofuse.model: shapes, batch consistency, gradient flow, config validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from emofuse.model import (
    PAPER_BRANCHES,
    BranchSpec,
    ConcatFusion,
    CrossAttentionFusion,
    EmotionNet,
    ModelConfig,
    MultiScaleBlock1d,
    MultiScaleBlock2d,
    PlainBlock1d,
    PlainBlock2d,
    SumFusion,
    make_fusion,
)
from emofuse.signal.functional import lengths_to_mask

# Small widths keep the tests fast; the structure is the same as the default model.
SMALL = dict(d_model=32, n_heads=4, lstm_hidden=16)
MFCC = BranchSpec("mfcc", "conv1d", in_dims=40, channels=32)
LOGMEL = BranchSpec("logmel", "conv2d", in_dims=64, channels=16)
PROSODY = BranchSpec("prosody", "conv1d", in_dims=3, channels=8)
BRANCHES = {"both": (MFCC, LOGMEL), "mfcc": (MFCC,), "logmel": (LOGMEL,),
            "three": (MFCC, LOGMEL, PROSODY)}  # fmt: skip

# name -> (ModelConfig overrides, branches)
ABLATIONS = {
    "default": ({}, "both"),
    "plain_blocks": ({"multiscale": False}, "both"),
    "concat": ({"fusion": "concat"}, "both"),
    "sum": ({"fusion": "sum"}, "both"),
    "mfcc_only": ({}, "mfcc"),
    "logmel_only": ({}, "logmel"),
    "no_temporal": ({"temporal": "none"}, "both"),
    "no_temporal_sum": ({"temporal": "none", "fusion": "sum"}, "both"),
    "attention_pool": ({"pooling": "attention"}, "both"),
    "logmel_only_no_temporal_attention": ({"temporal": "none", "pooling": "attention"}, "logmel"),
    "prosody_cross_attention": ({}, "three"),
    "prosody_concat": ({"fusion": "concat"}, "three"),
    "prosody_sum": ({"fusion": "sum"}, "three"),
}


def _inputs(lengths: list[int], T: int | None = None, branches=BRANCHES["three"]) -> dict:
    """Random inputs zeroed beyond each length, one entry per branch."""
    T = T if T is not None else max(lengths)
    lengths_t = torch.tensor(lengths)
    mask = lengths_to_mask(lengths_t, T).unsqueeze(1)  # (B, 1, T)
    return {b.name: (torch.randn(len(lengths), b.in_dims, T) * mask, lengths_t) for b in branches}


def _slice(features: dict, i: int, n: int) -> dict:
    """Item ``i`` alone, cut to its ``n`` valid frames."""
    return {k: (x[i : i + 1, :, :n], lengths[i : i + 1]) for k, (x, lengths) in features.items()}


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


def _model(branches: str = "both", **overrides) -> EmotionNet:
    torch.manual_seed(0)
    model = EmotionNet(ModelConfig(**{**SMALL, **overrides}), BRANCHES[branches])
    _randomise_norms(model)
    return model


def _ablation(name: str, **overrides) -> EmotionNet:
    settings, branches = ABLATIONS[name]
    return _model(branches, **settings, **overrides)


# --------------------------------------------------------------------------- shapes


def test_default_model_shape_and_size():
    model = EmotionNet().eval()
    assert model.branch_specs == PAPER_BRANCHES
    assert 300_000 <= model.num_parameters() <= 2_000_000
    assert model.num_parameters(trainable_only=True) == model.num_parameters()
    inputs = _inputs([301, 250, 17], branches=PAPER_BRANCHES)
    with torch.no_grad():
        logits = model(inputs)
    assert logits.shape == (3, 4)
    assert torch.isfinite(logits).all()
    text = model.summary()
    assert "total" in text and f"{model.num_parameters():,}" in text
    assert "fusion=cross_attention" in text
    assert "mfcc: conv1d 40x128" in text and "logmel: conv2d 64x16" in text


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_ablation_shapes(name):
    model = _ablation(name, n_classes=7).eval()
    with torch.no_grad():
        logits = model(_inputs([45, 30]))  # an unused extra feature is ignored
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()


def test_default_branch_outputs_are_quarter_rate():
    model = EmotionNet().eval()
    inputs = _inputs([400, 123], branches=PAPER_BRANCHES)
    with torch.no_grad():
        a = model.branches["mfcc"](*inputs["mfcc"])
        b = model.branches["logmel"](*inputs["logmel"])
    assert a.shape == b.shape == (2, 128, 100)
    # frames past ceil(123 / 4) = 31 are zero
    assert a[1, :, 31:].abs().max() == 0 and b[1, :, 31:].abs().max() == 0
    assert a[1, :, 30].abs().max() > 0


def test_single_branch_has_no_fusion_and_needs_only_its_input():
    model = _model("mfcc").eval()
    inputs = _inputs([20, 9], branches=BRANCHES["mfcc"])
    assert model(inputs).shape == (2, 4)
    assert list(model.branches) == ["mfcc"] and model.fusion is None


@pytest.mark.parametrize("T", range(1, 9))
def test_very_short_inputs(T):
    model = _model("three").eval()
    with torch.no_grad():
        logits = model(_inputs([T, max(1, T // 2)], T))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def test_inputs_are_checked():
    model = _model().eval()
    inputs = _inputs([10, 10], branches=BRANCHES["both"])
    mfcc, lengths = inputs["mfcc"]
    with pytest.raises(ValueError, match="lengths"):
        model({**inputs, "mfcc": (mfcc, torch.tensor([11, 3]))})
    with pytest.raises(ValueError, match="lengths"):
        model({**inputs, "mfcc": (mfcc, torch.tensor([0, 3]))})
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\)"):
        model({**inputs, "mfcc": (mfcc, torch.tensor([10]))})
    with pytest.raises(ValueError, match=r"feature 'mfcc' must have shape \(batch, 40, time\)"):
        model({**inputs, "mfcc": (mfcc[:, :20], lengths)})
    with pytest.raises(ValueError, match=r"missing input feature\(s\) \['logmel'\]"):
        model({"mfcc": inputs["mfcc"]})


def test_branch_specs_are_checked():
    with pytest.raises(ValueError, match="distinct names"):
        EmotionNet(ModelConfig(**SMALL), (MFCC, MFCC))
    with pytest.raises(ValueError, match="distinct names"):
        EmotionNet(ModelConfig(**SMALL), ())
    with pytest.raises(ValueError, match="unknown branch type"):
        BranchSpec("x", "conv3d", 4, 8)
    with pytest.raises(ValueError, match="identifier"):
        BranchSpec("two words", "conv1d", 4, 8)
    with pytest.raises(ValueError, match="in_dims must be a positive integer"):
        BranchSpec("x", "conv1d", 0, 8)
    with pytest.raises(ValueError, match=r"channels \(30\) must be divisible by scale \(4\)"):
        EmotionNet(ModelConfig(**SMALL), (BranchSpec("mfcc", "conv1d", 40, 30), LOGMEL))
    with pytest.raises(ValueError, match="'logmel'.*divisible by scale"):
        EmotionNet(ModelConfig(**SMALL), (MFCC, BranchSpec("logmel", "conv2d", 64, 18)))


def test_fusion_order_follows_the_branches():
    model = _model("three").eval()
    assert list(model.fusion.attend) == ["mfcc", "logmel", "prosody"]
    assert model.fusion.out_dim == 3 * 32
    reordered = EmotionNet(ModelConfig(**SMALL), (LOGMEL, PROSODY, MFCC))
    order = ["logmel", "prosody", "mfcc"]
    assert list(reordered.branches) == list(reordered.fusion.attend) == order


# --------------------------------------------------------------------------- batch consistency


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_batch_consistency(name):
    """In eval mode one utterance alone gives the same logits as its slice of a padded batch."""
    model = _ablation(name).eval()
    torch.manual_seed(1)
    lengths = [37, 58, 13, 6]  # longer and shorter neighbours; none a multiple of 4
    inputs = _inputs(lengths)
    with torch.no_grad():
        batch = model(inputs)
        for i, n in enumerate(lengths):
            alone = model(_slice(inputs, i, n))
            torch.testing.assert_close(alone, batch[i : i + 1], atol=1e-5, rtol=0)


def test_padding_content_is_ignored():
    """Garbage beyond the lengths (inputs not zeroed by the caller) does not change the logits."""
    model = _model("three").eval()
    inputs = _inputs([40, 23])
    noisy = {k: (x.clone(), n) for k, (x, n) in inputs.items()}
    for value, (x, _) in zip((5.0, -5.0, 3.0), noisy.values(), strict=True):
        x[1, :, 23:] = value
    with torch.no_grad():
        torch.testing.assert_close(model(noisy), model(inputs))


def test_every_feature_changes_the_output():
    model = _model("three").eval()
    inputs = _inputs([40, 40])
    with torch.no_grad():
        reference = model(inputs)
        for name, (x, n) in inputs.items():
            assert not torch.allclose(model({**inputs, name: (x + 1.0, n)}), reference), name


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
    model = _ablation(name).train()
    torch.manual_seed(2)
    logits = model(_inputs([33, 21, 50, 9]))
    loss = nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().max() > 0, pname


def test_default_model_gradients():
    torch.manual_seed(0)
    model = EmotionNet().train()
    model(_inputs([90, 61], branches=PAPER_BRANCHES)).logsumexp(dim=1).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().max() > 0, pname


# --------------------------------------------------------------------------- fusion modules


@pytest.mark.parametrize("n_features", [2, 3])
def test_fusion_modules(n_features):
    names = ("mfcc", "logmel", "prosody")[:n_features]
    features = [torch.randn(2, 7, 32) for _ in names]
    mask = lengths_to_mask(torch.tensor([7, 3]), 7)
    cross = CrossAttentionFusion(32, names, n_heads=4).eval()
    for name, fusion, width in (
        ("cross_attention", cross, n_features * 32),
        ("concat", ConcatFusion(32, names), n_features * 32),
        ("sum", SumFusion(32, names), 32),
    ):
        out = fusion(features, mask)
        assert out.shape == (2, 7, width) and fusion.out_dim == width
        assert out[1, 3:].abs().max() == 0
        built = make_fusion(name, 32, names)
        assert type(built) is type(fusion) and built.out_dim == width
        with pytest.raises(ValueError, match=f"built for {n_features} features"):
            fusion(features[:1], mask)
    # keys beyond the length do not matter
    changed = [s.clone() for s in features]
    changed[1][1, 3:] = 100.0
    torch.testing.assert_close(cross(changed, mask), cross(features, mask))
    torch.testing.assert_close(
        SumFusion(32, names)(features, mask)[0], sum(features)[0], atol=1e-6, rtol=0
    )
    torch.testing.assert_close(
        ConcatFusion(32, names)(features, mask)[0], torch.cat(features, dim=-1)[0]
    )


def test_fusion_errors():
    with pytest.raises(ValueError, match="fusion"):
        make_fusion("gated", 32, ("a", "b"))
    with pytest.raises(ValueError, match="divisible"):
        CrossAttentionFusion(30, ("a", "b"), n_heads=4)
    with pytest.raises(ValueError, match="at least 2 distinct feature names"):
        ConcatFusion(32, ("a",))
    with pytest.raises(ValueError, match="at least 2 distinct feature names"):
        SumFusion(32, ("a", "a"))


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"fusion": "gated"}, "fusion"),
        ({"temporal": "gru"}, "temporal"),
        ({"pooling": "max"}, "pooling"),
        ({"d_model": 130, "n_heads": 4}, "divisible by n_heads"),
        ({"d_model": 0}, "d_model must be a positive integer"),
        ({"lstm_hidden": -4}, "lstm_hidden"),
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


@pytest.mark.parametrize("key", ["branches", "prosody", "n_mfcc", "n_mels", "mfcc_channels"])
def test_config_has_no_feature_settings(key):
    """The features' settings moved to the feature list; ModelConfig keeps shared settings only."""
    with pytest.raises(ValueError, match="unknown ModelConfig key"):
        ModelConfig.from_dict({key: 1})


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


def test_stats_pooling_is_mean_and_std_of_the_valid_frames():
    from emofuse.model.temporal import StatsPooling

    x = torch.randn(2, 7, 3)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    pooled = StatsPooling()(x, mask)
    assert pooled.shape == (2, 6)
    valid = x[1, :4]
    torch.testing.assert_close(pooled[1, :3], valid.mean(0))
    torch.testing.assert_close(pooled[1, 3:], valid.std(0, unbiased=False), atol=1e-3, rtol=1e-3)
    model = EmotionNet(ModelConfig(pooling="stats")).eval()
    lengths = torch.tensor([200, 120])
    logits = model({"mfcc": (torch.randn(2, 40, 200), lengths),
                    "logmel": (torch.randn(2, 64, 200), lengths)})  # fmt: skip
    assert logits.shape == (2, 4) and model.embedding_dim == 2 * 2 * 128
