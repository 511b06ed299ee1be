"""Does a change leave the bundled models' answers bitwise the same?

Both bundled models, through torch and a fresh ONNX export, on the example clips and the first
200 EmoDB files: every ``predict_many`` probability and the examples' timelines. ``--save FILE``
writes them (``.npz``); ``--against FILE`` exits 1 unless every array is bitwise equal.

    python bench/identity.py --save runs/identity/before.npz    # about 10 min on 1 thread
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EMODB = ROOT.parent / "shared" / "corpora" / "emodb"


def clips(limit: int) -> list[Path]:
    """The example clips, then the first ``limit`` EmoDB files (none when it is absent)."""
    examples = sorted((ROOT / "examples").glob("*.flac"))
    emodb = sorted(EMODB.rglob("*.flac"))[:limit] if EMODB.is_dir() else []
    return examples + emodb


def answers(recognizer, paths: list[Path], examples: list[Path]) -> dict[str, np.ndarray]:
    """``name -> probabilities`` (NaN rows for "no speech") of predictions and timelines."""
    labels = recognizer.labels
    out = {}
    predictions = recognizer.predict_many(paths)
    out["predict"] = np.array([[p.probabilities.get(k, np.nan) if p.probabilities else np.nan
                                for k in labels] for p in predictions])  # fmt: skip
    for path in examples:
        segments = list(recognizer.timeline(path))
        out[f"timeline/{path.name}"] = np.array(
            [[s.start, s.end] + [s.probabilities.get(k, np.nan) if s.probabilities else np.nan
                                 for k in labels] for s in segments])  # fmt: skip
    return out


def run(limit: int) -> dict[str, np.ndarray]:
    from emofuse.inference import EmotionRecognizer
    from emofuse.inference.onnx import export_onnx
    from emofuse.pipeline import load_model

    paths = clips(limit)
    examples = [p for p in paths if p.parent.name == "examples"]
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("accurate", "fast"):
            onnx_path = export_onnx(load_model(model), Path(tmp) / f"{model}.onnx")
            for backend, source in (("torch", model), ("onnx", onnx_path)):
                recognizer = EmotionRecognizer.load(
                    source, backend=backend, threads=1, precision="fp32"
                )
                for name, array in answers(recognizer, paths, examples).items():
                    result[f"{model}/{backend}/{name}"] = array
                print(f"{model} {backend}: {len(paths)} clips", file=sys.stderr)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--save", type=Path, help="write the answers to this .npz")
    parser.add_argument("--against", type=Path, help="compare with this saved .npz")
    parser.add_argument("--limit", type=int, default=200, help="EmoDB files (default 200)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args.limit)
    if args.save:
        np.savez(args.save, **result)
    if args.against is None:
        return 0
    saved = dict(np.load(args.against))
    differ = sorted(k for k in saved.keys() | result.keys() if k not in saved or k not in result
                    or not np.array_equal(saved[k], result[k], equal_nan=True))  # fmt: skip
    for key in differ:
        a, b = saved.get(key), result.get(key)
        gap = (np.nanmax(np.abs(a - b)) if a is not None and b is not None and a.shape == b.shape
               else "missing or reshaped")  # fmt: skip
        print(f"DIFFERENT {key}: {gap}")
    print(f"{len(result) - len(differ)} of {len(saved.keys() | result.keys())} arrays identical")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
