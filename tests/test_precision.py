"""``precision="auto"``: bfloat16 only where the hardware computes it natively and the model file
carries a measured agreement with float32 of at least 98.5 % on every corpus; else float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import emofuse.device as device
from emofuse.cli import main
from emofuse.inference import EmotionRecognizer, TorchBackend
from emofuse.inference.precision import BF16_MIN_AGREEMENT, choose_precision
from emofuse.testing import synthetic_voice, tiny_pipeline

GOOD = {"emodb": 0.995, "ravdess": BF16_MIN_AGREEMENT}


@pytest.fixture
def cpu_reports(monkeypatch):
    """Make torch report the CPU's bfloat16 units as a test says (``amx``, ``avx512_bf16``)."""

    def report(amx: bool, avx512_bf16: bool) -> None:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        device.native_bf16.cache_clear()

    yield report
    device.native_bf16.cache_clear()


@pytest.mark.parametrize(("amx", "avx512_bf16", "unit"), [
    (True, True, "AMX"), (False, True, "AVX512-BF16"), (False, False, None),
])  # fmt: skip
def test_native_bf16_follows_what_torch_reports(cpu_reports, amx, avx512_bf16, unit):
    cpu_reports(amx, avx512_bf16)
    assert device.native_bf16("cpu") == unit


def test_native_bf16_falls_back_to_proc_cpuinfo(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert device._cpuinfo_flags(info) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert device._cpuinfo_flags(tmp_path / "missing") == set()
    read = device._cpuinfo_flags
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # a torch without the probes
    monkeypatch.setattr(device, "_cpuinfo_flags", lambda: read(info))
    device.native_bf16.cache_clear()
    try:
        assert device.native_bf16("cpu") == "AVX512-BF16"
    finally:
        device.native_bf16.cache_clear()


def test_the_real_cpu_is_read_as_the_kernel_lists_it():
    device.native_bf16.cache_clear()
    unit = device.native_bf16("cpu")
    flags = device._cpuinfo_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this system to compare with")
    expected = "AMX" if "amx_tile" in flags else "AVX512-BF16" if "avx512_bf16" in flags else None
    assert unit == expected


@pytest.mark.parametrize(("native", "agreement", "used", "why"), [
    (None, GOOD, "fp32", "no native bfloat16"),
    ("AVX512-BF16", None, "fp32", "no measured bfloat16 agreement"),
    ("AVX512-BF16", {"emodb": 0.999, "korean": 0.98}, "fp32", "only 98.0% of korean"),
    ("AMX", GOOD, "bf16", "at least 98.5% of every measured corpus"),
    ("CUDA", GOOD, "bf16", "CUDA computes bfloat16 natively"),
])  # fmt: skip
def test_auto_needs_native_units_and_measured_agreement(native, agreement, used, why):
    choice = choose_precision("auto", "cpu", agreement, native=native)
    assert (choice.requested, choice.used) == ("auto", used) and why in choice.reason


def test_explicit_precisions_are_taken_as_asked():
    assert choose_precision("fp32", "cpu", GOOD, native="AMX").used == "fp32"
    assert choose_precision("bf16", "cpu", None, native=None).used == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        choose_precision("fp16", "cpu", None)


def _probabilities(backend: TorchBackend) -> np.ndarray:
    recognizer = EmotionRecognizer(backend, vad=False)
    prediction = recognizer.predict(synthetic_voice(3.0, seed=4), sample_rate=16000)
    return np.array(list(prediction.probabilities.values()))


def test_auto_without_native_bf16_is_exactly_fp32(cpu_reports):
    cpu_reports(False, False)
    pipeline = tiny_pipeline()
    pipeline.extra = {"bf16_agreement": GOOD}
    auto = TorchBackend(pipeline, device="cpu")  # auto is the default
    assert auto.precision_choice.used == "fp32"
    fp32 = TorchBackend(pipeline, "cpu", "fp32")
    np.testing.assert_array_equal(_probabilities(auto), _probabilities(fp32))


def test_auto_with_native_bf16_and_a_measured_model_runs_bf16(cpu_reports):
    cpu_reports(True, True)
    pipeline = tiny_pipeline()
    assert TorchBackend(pipeline, device="cpu").precision == "fp32"  # not measured
    pipeline.extra = {"bf16_agreement": GOOD}
    backend = TorchBackend(pipeline, device="cpu")
    assert backend.precision == "bf16" and "AMX" in backend.precision_choice.reason
    bf16 = TorchBackend(pipeline, "cpu", "bf16")
    np.testing.assert_array_equal(_probabilities(backend), _probabilities(bf16))


def test_the_cli_says_the_choice_once(capsys, tmp_path):
    import soundfile as sf

    from emofuse.testing import save_tiny_pipeline

    model = save_tiny_pipeline(tmp_path / "tiny.pt")
    clip = tmp_path / "a.wav"
    sf.write(clip, synthetic_voice(1.0), 16000)
    assert main(["predict", str(clip), str(clip), "--model", str(model), "--no-vad"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "precision" in line]
    assert notes == ["emofuse: precision fp32: the model file carries no measured bfloat16 "
                     "agreement (bench/precision.py --save-into-models)"]  # fmt: skip
    assert main(["predict", str(clip), "--model", str(model), "--precision", "fp32"]) == 0
    assert "precision" not in capsys.readouterr().err


def test_onnx_takes_auto_and_fp32_but_not_bf16(tmp_path):
    with pytest.raises(ValueError, match="float32"):
        EmotionRecognizer.load(tmp_path / "m.onnx", precision="bf16")


def test_predict_says_the_precision_of_the_model_that_runs_after_adaptation(
    capsys, tmp_path, cpu_reports
):
    """A measured model runs bf16 on a native CPU, but adapted to the inputs it is a model
    without a measurement: the one note says fp32, the precision the answers come from."""
    import soundfile as sf

    from emofuse.pipeline import save_pipeline

    cpu_reports(True, True)
    pipeline = tiny_pipeline()
    save_pipeline(pipeline, tmp_path / "measured.pt", bf16_agreement=GOOD)
    clips = []
    for seed in (1, 2):
        clips.append(tmp_path / f"voice{seed}.wav")
        sf.write(clips[-1], synthetic_voice(31.0, seed=seed), 16000)
    model = str(tmp_path / "measured.pt")
    assert main(["predict", *map(str, clips), "--model", model, "--no-vad"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "precision" in line]
    assert len(notes) == 1 and notes[0].startswith("emofuse: precision bf16: AMX")
    argv = ["predict", *map(str, clips), "--model", model, "--no-vad", "--adapt-to-inputs"]
    assert main(argv) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "precision" in line]
    assert notes == ["emofuse: precision fp32: the model file carries no measured bfloat16 "
                     "agreement (bench/precision.py --save-into-models)"]  # fmt: skip
