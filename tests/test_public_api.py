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
