"""The public surface: ``from emofuse import ...`` gives every type a public method returns."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import emofuse
import emofuse.inference


def _classes(hint: object) -> set[type]:
    """The classes named anywhere in a type hint (``Iterator[Segment] | None`` -> {Segment})."""
    found = {hint} if isinstance(hint, type) else set()
    for arg in typing.get_args(hint):
        found |= _classes(arg)
    return found


def test_public_names_are_the_defining_modules_objects():
    for name in emofuse.__all__:
        value = getattr(emofuse, name)
        assert value.__name__ == name
        assert sys.modules[value.__module__].__dict__[name] is value
    assert set(emofuse.__all__) <= set(dir(emofuse))


def test_every_type_a_public_method_returns_is_exported():
    owners = [getattr(emofuse, name) for name in emofuse.__all__]
    missing = {}
    for owner in owners:
        for name, member in inspect.getmembers(owner):
            if name.startswith("_") or not callable(member) or isinstance(member, type):
                continue
            returned = typing.get_type_hints(member).get("return")
            for cls in _classes(returned):
                if cls.__module__.startswith("emofuse") and cls.__name__ not in emofuse.__all__:
                    missing[f"{owner.__name__}.{name}"] = cls.__name__
    assert not missing, f"returned but not exported from emofuse: {missing}"


def test_inference_all_is_importable_and_covers_the_top_level():
    for name in emofuse.inference.__all__:
        assert hasattr(emofuse.inference, name), name
    returned = {"EmotionRecognizer", "Prediction", "Segment", "EmotionStream", "StreamEvent"}
    assert returned <= set(emofuse.inference.__all__)


def test_import_emofuse_stays_light():
    code = "import sys, emofuse; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_attribute_is_an_attribute_error():
    try:
        emofuse.NotAThing  # noqa: B018
    except AttributeError as error:
        assert "NotAThing" in str(error)
    else:
        raise AssertionError("emofuse.NotAThing should raise AttributeError")


def test_backends_declare_every_capability_the_protocol_names():
    """No caller probes a backend: each one has every protocol member, and one without a
    capability says so (``can_*`` false) and raises BackendUnsupported if asked."""
    import numpy as np
    import pytest

    from emofuse.inference.backends import Backend, BackendUnsupported, TorchBackend
    from emofuse.inference.onnx import OnnxBackend
    from emofuse.testing import tiny_pipeline

    members = set(Backend.__annotations__) | {m for m in vars(Backend) if not m.startswith("_")}
    torch_backend = TorchBackend(tiny_pipeline(), device="cpu")
    assert {m for m in members if not hasattr(torch_backend, m)} == set()
    # what OnnxBackend.__init__ sets (from the sidecar) aside, the class declares the rest
    from_sidecar = {"labels", "sample_rate", "window_seconds", "hop_seconds", "speech_only",
                    "metadata", "normalised_per", "precision_choice"}  # fmt: skip
    assert {m for m in members - from_sidecar if not hasattr(OnnxBackend, m)} == set()
    assert torch_backend.can_embed and torch_backend.can_adapt
    assert not OnnxBackend.can_embed and not OnnxBackend.can_adapt
    onnx_backend = OnnxBackend.__new__(OnnxBackend)  # no file needed to ask
    waves, lengths = np.zeros((1, 16000), np.float32), np.array([16000])
    with pytest.raises(BackendUnsupported, match="torch backend"):
        onnx_backend.embeddings(waves, lengths)
    with pytest.raises(BackendUnsupported, match="torch backend"):
        onnx_backend.adapting_probabilities(waves, lengths, [], np.ones(1))


def test_no_module_probes_a_backend():
    """Callers read the protocol's declarations (``Backend``), never hasattr/getattr/isinstance."""
    import re
    from pathlib import Path

    root = Path(emofuse.__file__).parent
    probe = re.compile(r"(hasattr|getattr)\([^)]*backend|isinstance\([^)]*Backend\)")
    found = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if probe.search(line)
    ]
    assert found == []
