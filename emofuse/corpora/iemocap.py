"""IEMOCAP (Busso et al., 2008): 5 sessions, 10 actors, English dyadic conversations.

Raw layout (``IEMOCAP_full_release``)::

    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav   (or .flac)
    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt

Each EmoEvaluation file has a ``%`` header line, blank lines, then one block per utterance::

    [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
    C-E2:<TAB>Neutral;<TAB>()
    A-E3:<TAB>val 3; act 2; dom  2;<TAB>()

Only lines starting with ``[`` are read (the rest are ignored); such a line must have the four
tab-separated fields above, else ``CorpusError`` names the file and line. Sub-folders of
EmoEvaluation (Categorical/, Attribute/, ...) and hidden ``._*`` files are not read.

Codes: neu neutral, hap happy, exc ``"excited"`` (merged into happy by the ``iemocap4`` task),
ang angry, sad sad, fea fearful, sur surprised, dis disgusted; fru, oth, xxx and unknown codes
get label ``None``. ``extras``: ``code``, ``dialog``, ``start``, ``end`` (seconds),
``valence``, ``arousal``, ``dominance``.

Speaker: session number + the gender letter that starts the last name field
(``Ses01F_impro01_M012`` -> speaker ``"1M"``, gender ``"M"``); session: ``"1"``.
Label lines whose audio file is missing are skipped with one ``CorpusWarning`` giving the count.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from emofuse.corpora.base import (
    CorpusError,
    CorpusWarning,
    Utterance,
    find_audio,
    index_by_stem,
    require_dir,
)

NAME = "iemocap"
CODES = {
    "neu": "neutral",
    "hap": "happy",
    "exc": "excited",
    "ang": "angry",
    "sad": "sad",
    "fea": "fearful",
    "sur": "surprised",
    "dis": "disgusted",
    "fru": None,
    "oth": None,
    "xxx": None,
}
EXPECTED = (
    "<root>/Session{1..5}/dialog/EmoEvaluation/<dialog>.txt and "
    "<root>/Session{1..5}/sentences/wav/<dialog>/<utt>.wav (or .flac)"
)
_TIMES = re.compile(r"^\[\s*([0-9.]+)\s*-\s*([0-9.]+)\s*\]$")
_VAD = re.compile(r"^\[\s*([0-9.]+)\s*,\s*([0-9.]+)\s*,\s*([0-9.]+)\s*\]$")
_UTT = re.compile(r"^Ses(\d{2})[FM]_\w+_([FM])\w*$")


def prepare(root: str | Path) -> list[Utterance]:
    """Read every session's EmoEvaluation files; one utterance per label line with audio."""
    root = require_dir(root, NAME, EXPECTED)
    sessions = sorted(p for p in root.glob("Session*") if (p / "dialog" / "EmoEvaluation").is_dir())
    if not sessions:
        raise CorpusError(
            f"{NAME}: no Session*/dialog/EmoEvaluation folder in {root}; expected {EXPECTED}"
        )
    utterances: list[Utterance] = []
    missing: list[str] = []
    for session_dir in sessions:
        audio = index_by_stem(find_audio(session_dir / "sentences" / "wav", "*/*"), NAME)
        label_files = sorted((session_dir / "dialog" / "EmoEvaluation").glob("*.txt"))
        for label_file in (p for p in label_files if not p.name.startswith(".")):
            for utt in _parse_label_file(label_file, audio):
                if isinstance(utt, str):
                    missing.append(utt)
                else:
                    utterances.append(utt)
    if not utterances:
        raise CorpusError(
            f"{NAME}: no labelled utterance with audio under {root}; expected {EXPECTED}"
        )
    if missing:
        warnings.warn(
            f"{NAME}: {len(missing)} labelled utterance(s) have no audio file and were skipped, "
            f"e.g. {missing[0]}",
            CorpusWarning,
            stacklevel=2,
        )
    return utterances


def _parse_label_file(path: Path, audio: dict[str, Path]) -> list[Utterance | str]:
    """Utterances of one EmoEvaluation file; the name (a ``str``) of each one without audio."""
    out: list[Utterance | str] = []
    with path.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.startswith("["):
                continue
            fields = [x.strip() for x in line.rstrip("\r\n").split("\t")]
            times = _TIMES.match(fields[0])
            vad = _VAD.match(fields[3]) if len(fields) == 4 else None
            name = _UTT.match(fields[1]) if len(fields) == 4 else None
            if len(fields) != 4 or not (times and vad and name):
                raise CorpusError(
                    f"{path}:{lineno}: malformed IEMOCAP label line {line.rstrip()!r}; expected "
                    "'[START - END]<TAB>SesNNx_dialog_xNNN<TAB>code<TAB>[V, A, D]'"
                )
            utt_id, code = fields[1], fields[2]
            if utt_id not in audio:
                out.append(utt_id)
                continue
            session = str(int(name.group(1)))
            gender = name.group(2)
            out.append(
                Utterance(
                    id=utt_id,
                    path=audio[utt_id],
                    label=CODES.get(code),
                    speaker=session + gender,
                    session=session,
                    gender=gender,
                    corpus=NAME,
                    extras={
                        "code": code,
                        "dialog": utt_id.rsplit("_", 1)[0],
                        "start": float(times.group(1)),
                        "end": float(times.group(2)),
                        "valence": float(vad.group(1)),
                        "arousal": float(vad.group(2)),
                        "dominance": float(vad.group(3)),
                    },
                )
            )
    return out
