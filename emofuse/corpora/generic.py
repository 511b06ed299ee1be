"""Any labelled collection: a folder tree named by label, or a CSV table.

Folder tree (``root`` is a directory); the folder holding a file names its label, the folder
above that (when it is inside ``root``) names the speaker, otherwise the speaker is
``"unknown"``::

    <root>/<speaker>/<label>/<name>.wav   -> speaker "<speaker>"
    <root>/<label>/<name>.wav             -> speaker "unknown"

CSV table (``root`` is a ``.csv`` file) with a header and columns ``path,label,speaker`` and
optional ``session`` and ``gender`` (F/M); paths relative to the CSV's folder (or absolute);
an empty label gives label ``None`` (unlabelled audio); other columns go to ``extras``::

    path,label,speaker,session
    clips/a.wav,happy,spk1,s1

Labels (stripped, lower-cased) must be words of ``emofuse.corpora.labels.VOCABULARY``; an unknown
label raises ``CorpusError`` naming the folder, or the CSV file and line. Ids are paths
relative to ``root`` (or to the CSV's folder) without the suffix; the raw label is kept in
``extras["code"]``. Gender is ``None`` unless the CSV gives it.
"""

from __future__ import annotations

import csv
from pathlib import Path

from emofuse.corpora.base import (
    CorpusError,
    Utterance,
    check_unique_ids,
    collect,
    find_audio,
    require_dir,
)
from emofuse.corpora.labels import VOCABULARY

NAME = "generic"
EXPECTED = "<root>/[<speaker>/]<label>/<name>.wav (or .flac), or a CSV with path,label,speaker"
_GENDERS = {"": None, "f": "F", "m": "M"}
_CSV_FIELDS = {"path", "label", "speaker", "session", "gender"}


def prepare(root: str | Path) -> list[Utterance]:
    """Read a label-named folder tree, or a CSV table when ``root`` is a ``.csv`` file."""
    path = Path(root).expanduser()
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise CorpusError(f"{NAME}: CSV file {path} does not exist; expected {EXPECTED}")
        return _from_csv(path)
    root = require_dir(path, NAME, EXPECTED)

    def parse(audio: Path) -> Utterance:
        rel = audio.relative_to(root)
        if len(rel.parts) < 2:
            raise CorpusError(f"{NAME}: {audio} is not inside a label folder; expected {EXPECTED}")
        code = rel.parts[-2]
        label = _check_label(code, f"label folder {audio.parent}")
        return Utterance(
            id=rel.with_suffix("").as_posix(),
            path=audio,
            label=label,
            speaker=rel.parts[-3] if len(rel.parts) >= 3 else "unknown",
            session=None,
            gender=None,
            corpus=NAME,
            extras={"code": code},
        )

    return collect(find_audio(root), parse, corpus=NAME, root=root, expected=EXPECTED)


def _check_label(text: str, where: str) -> str:
    label = text.strip().lower()
    if label not in VOCABULARY:
        raise CorpusError(
            f"{where}: unknown label {text!r}; expected one of {', '.join(VOCABULARY)}"
        )
    return label


def _from_csv(table: Path) -> list[Utterance]:
    base = table.parent
    rows: list[Utterance] = []
    with table.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or ()]
        missing = {"path", "label", "speaker"} - set(columns)
        if missing:
            raise CorpusError(f"{table}: missing column(s) {sorted(missing)}; header is {columns}")
        reader.fieldnames = columns
        for row in reader:
            where = f"{table}:{reader.line_num}"
            values = {k: (v or "").strip() for k, v in row.items() if k is not None}
            audio = base / values["path"]
            if not audio.is_file():
                raise CorpusError(f"{where}: audio file {audio} does not exist")
            if not values["speaker"]:
                raise CorpusError(f"{where}: empty speaker")
            gender = values.get("gender", "").lower()
            if gender not in _GENDERS:
                raise CorpusError(f"{where}: gender {values['gender']!r} is not F, M or empty")
            code = values["label"]
            rel = audio.relative_to(base) if audio.is_relative_to(base) else audio
            rows.append(
                Utterance(
                    id=rel.with_suffix("").as_posix(),
                    path=audio,
                    label=_check_label(code, where) if code else None,
                    speaker=values["speaker"],
                    session=values.get("session") or None,
                    gender=_GENDERS[gender],
                    corpus=NAME,
                    extras={
                        "code": code,
                        **{k: v for k, v in values.items() if k not in _CSV_FIELDS},
                    },
                )
            )
    if not rows:
        raise CorpusError(f"{table}: no rows after the header")
    check_unique_ids(rows, NAME)
    return rows
