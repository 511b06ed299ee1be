"""Write a copy of a corpus folder under other recording conditions (emofuse.signal.degrade).

Every audio file under SOURCE is read (16 kHz mono), passed through a random chain of
conditions (room, telephone band, noise, speed, codec, level; drawn per file from ``--seed`` and
the file's path) and written as 16-bit FLAC under OUT with the same relative path and stem, so
the corpus loader reads the copy as it reads the original. A ``conditions.tsv`` lists what each
file got. Files already written are kept (a killed run resumes).

    python scripts/degrade_corpus.py ../shared/corpora/emodb runs/degraded/0/emodb --seed 0
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

from emofuse.corpora.base import find_audio
from emofuse.files import atomic_path
from emofuse.signal.audio import load_audio
from emofuse.signal.degrade import random_conditions

RATE = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a corpus folder in its own layout")
    parser.add_argument("out", type=Path, help="where the degraded copy goes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = find_audio(args.source)
    if not files:
        raise SystemExit(f"no .wav or .flac files under {args.source}")
    rows = []
    for path in files:
        relative = path.relative_to(args.source)
        target = args.out / relative.with_suffix(".flac")
        digest = hashlib.sha1(f"{args.seed}|{relative}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        wave, applied = random_conditions(load_audio(path, RATE), RATE, rng)
        rows.append(f"{relative}\t{'; '.join(applied)}")
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            sf.write(tmp, wave, RATE, format="FLAC", subtype="PCM_16")
    (args.out / "conditions.tsv").write_text("file\tconditions\n" + "\n".join(rows) + "\n")
    print(f"{len(files)} files -> {args.out}")


if __name__ == "__main__":
    main()
