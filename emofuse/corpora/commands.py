"""The Indian EmoSpeech Command Dataset v0.1 (Banga et al., arXiv:1910.13801;
``RakshakTeam/emospeech-dataset-v1``, commit 85b1ef5): Hindi and English command words recorded
on phones in real places. Licence CC BY-NC-SA 4.0.

Raw layout (the repository as cloned)::

    <root>/<place>/<keyword>-<environment>-<emotion>-<timestamp>-<userhash>.wav

Places: House, Metro, Misc, Near Lake, Railway, Roads, webservice. Emotions: calm (the
``commands4`` task merges it into neutral), fearful, angry, happy; ``None`` gets label ``None``.
Keyword ``background`` marks a clip without a command word (the README: the absence of a
keyword), so it gets label ``None`` too whatever its emotion field says.

Speaker: the user hash. One hash (:data:`UNKNOWN_USER`) stands for every unidentified user and
holds most clips, so folds grouped by hash are **not** speaker-independent for that group.
No sessions, no genders. ``extras``: ``code`` (the emotion field), ``keyword``,
``environment``, ``place``, ``timestamp``.
"""

from __future__ import annotations

import re
from pathlib import Path

from emofuse.corpora.base import Utterance, collect, find_audio, require_dir

NAME = "commands"
CODES = {"calm": "calm", "fearful": "fearful", "angry": "angry", "happy": "happy"}
UNKNOWN_USER = "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f"
NO_KEYWORD = "background"
EXPECTED = "<root>/<place>/<keyword>-<environment>-<emotion>-<timestamp>-<userhash>.wav"
_STEM = re.compile(r"^([^-]+)-([^-]+)-([A-Za-z]+)-([^-]+)-([0-9a-f]+)$")


def prepare(root: str | Path) -> list[Utterance]:
    """One utterance per audio file in the place folders."""
    root = require_dir(root, NAME, EXPECTED)
    return collect(find_audio(root, "*/*"), _parse, corpus=NAME, root=root, expected=EXPECTED)


def _parse(path: Path) -> Utterance | None:
    match = _STEM.match(path.stem)
    if match is None:
        return None
    keyword, environment, code, timestamp, user = match.groups()
    label = None if keyword.lower() == NO_KEYWORD else CODES.get(code.lower())
    return Utterance(
        id=path.stem,
        path=path,
        label=label,
        speaker=user,
        session=None,
        gender=None,
        corpus=NAME,
        extras={
            "code": NO_KEYWORD if keyword.lower() == NO_KEYWORD else code,
            "keyword": keyword,
            "environment": environment,
            "place": path.parent.name,
            "timestamp": timestamp,
        },
    )
