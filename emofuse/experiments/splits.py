"""Cross-validation folds; speaker-independent unless a random split is asked for by name.

Protocols (``make_folds``):

- ``"loso-session"``: one fold per session; its speakers are the test set (IEMOCAP: 5 folds).
- ``"loso-speaker"``: one fold per speaker (EmoDB: 10 folds).
- ``"kfold-speaker-K"``: speakers in natural order (``"2"`` before ``"10"``) cut into K
  contiguous groups of near-equal size, one test group per fold (RAVDESS K=6: actors 01-04,
  05-08, ...; odd actors are male, so each group is balanced by gender). No shuffling: the
  folds are the same for every seed.
- ``"loco"``: leave one corpus out, one fold per corpus (its speakers are all new to training,
  and so are its language and recording conditions); validation speakers from each training
  corpus.
- ``"random"``: one utterance-level split whose speakers overlap; named and described as such.

In every speaker-independent fold the test speakers appear in neither train nor validation.
Validation speakers come from the training side: ``n_val_speakers`` of them (default: 10% of
the training-side speakers, at least 1), drawn per fold with ``random.Random(f"{seed}:{name}")``
and alternating genders when genders are known. When the training side has a single speaker
(TESS has two), validation is 10% of that speaker's utterances instead, and the fold
description says so. Speakers are keyed by ``(corpus, speaker)``, so corpora can be mixed.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from emofuse.corpora.base import Utterance, natural_key

SpeakerKey = tuple[str, str]

_DEFAULT_PROTOCOLS = {
    "iemocap": "loso-session",
    "emodb": "loso-speaker",
    "emovo": "loso-speaker",
    "savee": "loso-speaker",
    "tess": "loso-speaker",
    "generic": "loso-speaker",
    "ravdess": "kfold-speaker-6",
    "cremad": "kfold-speaker-5",
    "ased": "kfold-speaker-5",
    "spanish": "kfold-speaker-4",
    "korean": "kfold-speaker-5",
    "turkish": "loso-speaker",
    # grouped by user hash; one hash stands for every unidentified user (most clips), so the
    # fold holding it is not speaker-independent (emofuse.corpora.commands)
    "commands": "kfold-speaker-5",
}
_KFOLD = "kfold-speaker-"
_VAL_FRACTION = 0.1


@dataclass
class Fold:
    """One train/validation/test partition; ``speaker_overlap`` is True only for random splits."""

    name: str
    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    speaker_overlap: bool
    description: str


def speaker_key(utt: Utterance) -> SpeakerKey:
    """``(corpus, speaker)``: speaker names are unique within one corpus only."""
    return (utt.corpus, utt.speaker)


def default_protocol(corpus: str) -> str:
    """The speaker-independent protocol usually reported for ``corpus``."""
    try:
        return _DEFAULT_PROTOCOLS[corpus]
    except KeyError:
        raise ValueError(
            f"no default protocol for corpus {corpus!r}; known: {sorted(_DEFAULT_PROTOCOLS)}"
        ) from None


def make_folds(
    utterances: list[Utterance],
    protocol: str,
    seed: int = 0,
    n_val_speakers: int | None = None,
) -> list[Fold]:
    """Folds for ``loso-session``, ``loso-speaker``, ``kfold-speaker-K`` or ``random``."""
    if protocol == "loso-session":
        return leave_one_session_out(utterances, seed=seed, n_val_speakers=n_val_speakers)
    if protocol == "loso-speaker":
        return leave_one_speaker_out(utterances, seed=seed, n_val_speakers=n_val_speakers)
    if protocol.startswith(_KFOLD) and protocol[len(_KFOLD) :].isdigit():
        k = int(protocol[len(_KFOLD) :])
        return speaker_kfold(utterances, k, seed=seed, n_val_speakers=n_val_speakers)
    if protocol == "loco":
        return leave_one_corpus_out(utterances, seed=seed)
    if protocol == "random":
        return random_split(utterances, seed=seed)
    raise ValueError(
        f"unknown protocol {protocol!r}; expected loso-session, loso-speaker, "
        "kfold-speaker-K (e.g. kfold-speaker-6), loco or random"
    )


def leave_one_session_out(
    utterances: list[Utterance], *, seed: int = 0, n_val_speakers: int | None = None
) -> list[Fold]:
    """One fold per session; every speaker must belong to exactly one session."""
    sessions: dict[tuple[str, str], set[SpeakerKey]] = defaultdict(set)
    speaker_session: dict[SpeakerKey, str] = {}
    for utt in utterances:
        if utt.session is None:
            raise ValueError(f"utterance {utt.id!r} ({utt.path}) has no session")
        key = speaker_key(utt)
        if speaker_session.setdefault(key, utt.session) != utt.session:
            raise ValueError(
                f"speaker {utt.speaker!r} appears in sessions {speaker_session[key]!r} and "
                f"{utt.session!r}; leave-one-session-out would not be speaker-independent"
            )
        sessions[(utt.corpus, utt.session)].add(key)
    show = _namer(utterances)
    groups = {f"session-{show(s)}": sessions[s] for s in sorted(sessions, key=_sort_key)}
    return _holdout_folds(utterances, groups, "leave-one-session-out", seed, n_val_speakers)


def leave_one_speaker_out(
    utterances: list[Utterance], *, seed: int = 0, n_val_speakers: int | None = None
) -> list[Fold]:
    """One fold per speaker."""
    show = _namer(utterances)
    groups = {f"speaker-{show(s)}": {s} for s in _speakers(utterances)}
    return _holdout_folds(utterances, groups, "leave-one-speaker-out", seed, n_val_speakers)


def speaker_kfold(
    utterances: list[Utterance], k: int, *, seed: int = 0, n_val_speakers: int | None = None
) -> list[Fold]:
    """K folds of contiguous speaker groups (natural order); sizes differ by at most one."""
    speakers = _speakers(utterances)
    if not 2 <= k <= len(speakers):
        raise ValueError(f"speaker k-fold needs 2 <= k <= {len(speakers)} (the speakers), got {k}")
    groups: dict[str, set[SpeakerKey]] = {}
    start = 0
    for i in range(k):
        size = len(speakers) // k + (i < len(speakers) % k)
        groups[f"fold-{i + 1}-of-{k}"] = set(speakers[start : start + size])
        start += size
    return _holdout_folds(utterances, groups, f"speaker {k}-fold", seed, n_val_speakers)


def holdout_speakers(
    utterances: list[Utterance], *, seed: int = 0
) -> tuple[list[Utterance], list[Utterance]]:
    """(train, validation): 10% of each corpus's speakers (at least 1) held out for validation.

    For training a final model on everything; every corpus is represented in validation.
    """
    val: set[SpeakerKey] = set()
    for corpus in sorted({u.corpus for u in utterances}):
        own = [u for u in utterances if u.corpus == corpus]
        candidates = _speakers(own)
        if len(candidates) < 2:
            raise ValueError(f"corpus {corpus!r} has {len(candidates)} speaker(s); need 2 or more")
        genders = {speaker_key(u): u.gender for u in own}
        val |= _pick_val(candidates, genders, None, random.Random(f"{seed}:{corpus}"), corpus)
    return (
        [u for u in utterances if speaker_key(u) not in val],
        [u for u in utterances if speaker_key(u) in val],
    )


def leave_one_corpus_out(utterances: list[Utterance], *, seed: int = 0) -> list[Fold]:
    """One fold per corpus: test on it, train on the others (validation speakers from each)."""
    corpora = sorted({u.corpus for u in utterances})
    if len(corpora) < 2:
        raise ValueError(f"loco needs at least 2 corpora, got {corpora}")
    folds = []
    for corpus in corpora:
        test = [u for u in utterances if u.corpus == corpus]
        train, val = holdout_speakers([u for u in utterances if u.corpus != corpus], seed=seed)
        others = ", ".join(c for c in corpora if c != corpus)
        folds.append(
            Fold(
                name=f"corpus-{corpus}",
                train=train,
                val=val,
                test=test,
                speaker_overlap=False,
                description=(
                    f"loco (speaker- and corpus-independent): test corpus {corpus}; "
                    f"train and validation speakers from {others}"
                ),
            )
        )
    return folds


def random_split(
    utterances: list[Utterance],
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
) -> list[Fold]:
    """One random utterance-level fold; speakers overlap, so results are not speaker-independent."""
    if not (0 < test_fraction and 0 < val_fraction and test_fraction + val_fraction < 1):
        raise ValueError(
            f"need 0 < test_fraction, 0 < val_fraction and a sum < 1, got {test_fraction}, "
            f"{val_fraction}"
        )
    shuffled = list(utterances)
    random.Random(f"{seed}:random").shuffle(shuffled)
    n_test = round(test_fraction * len(shuffled))
    n_val = round(val_fraction * len(shuffled))
    test, val, train = (
        shuffled[:n_test],
        shuffled[n_test : n_test + n_val],
        shuffled[n_test + n_val :],
    )
    if not (test and val and train):
        raise ValueError(f"{len(utterances)} utterances are too few for a random split")
    fold = Fold(
        name="random-speaker-overlap",
        train=train,
        val=val,
        test=test,
        speaker_overlap=True,
        description=(
            f"RANDOM utterance split (seed {seed}, test {test_fraction:g}, val {val_fraction:g}): "
            "speakers overlap between train, validation and test; NOT speaker-independent"
        ),
    )
    return [fold]


def _holdout_folds(
    utterances: list[Utterance],
    groups: dict[str, set[SpeakerKey]],
    protocol: str,
    seed: int,
    n_val_speakers: int | None,
) -> list[Fold]:
    """One fold per group of test speakers; validation speakers drawn from the rest."""
    if len(groups) < 2:
        raise ValueError(
            f"{protocol} needs at least 2 groups of speakers, got {len(groups)}; "
            "use protocol 'random' for a speaker-overlapping split"
        )
    genders = {speaker_key(u): u.gender for u in utterances}
    show = _namer(utterances)
    folds = []
    for name, test_speakers in groups.items():
        rng = random.Random(f"{seed}:{name}")
        test = [u for u in utterances if speaker_key(u) in test_speakers]
        rest = [u for u in utterances if speaker_key(u) not in test_speakers]
        candidates = _speakers(rest)
        if len(candidates) == 1:
            rng.shuffle(rest)
            n_val = max(1, round(_VAL_FRACTION * len(rest)))
            if n_val >= len(rest):
                raise ValueError(f"fold {name}: {len(rest)} training utterance(s) are too few")
            val, train = rest[:n_val], rest[n_val:]
            val_text = f"validation: {n_val} random utterances of the one training speaker"
        else:
            val_speakers = _pick_val(candidates, genders, n_val_speakers, rng, name)
            val = [u for u in rest if speaker_key(u) in val_speakers]
            train = [u for u in rest if speaker_key(u) not in val_speakers]
            val_text = f"validation speakers {_list(val_speakers, show)}"
        folds.append(
            Fold(
                name=name,
                train=train,
                val=val,
                test=test,
                speaker_overlap=False,
                description=(
                    f"{protocol} (speaker-independent): test speakers "
                    f"{_list(test_speakers, show)}; {val_text}; "
                    f"train {len(_speakers(train))} speakers, {len(train)} utterances"
                ),
            )
        )
    return folds


def _pick_val(
    candidates: list[SpeakerKey],
    genders: dict[SpeakerKey, str | None],
    n: int | None,
    rng: random.Random,
    fold: str,
) -> set[SpeakerKey]:
    """``n`` speakers (default 10%, at least 1), alternating F/M where genders are known."""
    n = max(1, round(_VAL_FRACTION * len(candidates))) if n is None else n
    if not 1 <= n < len(candidates):
        raise ValueError(
            f"fold {fold}: n_val_speakers must be in 1..{len(candidates) - 1} "
            f"(training-side speakers minus one), got {n}"
        )
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    by_gender = [[s for s in shuffled if genders[s] == g] for g in ("F", "M")]
    rng.shuffle(by_gender)
    interleaved = [s for pair in zip(*by_gender, strict=False) for s in pair]
    paired = len(interleaved) // 2
    order = interleaved + by_gender[0][paired:] + by_gender[1][paired:]
    order += [s for s in shuffled if genders[s] not in ("F", "M")]
    return set(order[:n])


def _speakers(utterances: list[Utterance]) -> list[SpeakerKey]:
    return sorted({speaker_key(u) for u in utterances}, key=_sort_key)


def _sort_key(key: tuple[str, str]) -> tuple[object, ...]:
    return (key[0], *natural_key(key[1]))


def _namer(utterances: list[Utterance]) -> Callable[[tuple[str, str]], str]:
    """Names keys ``speaker`` for one corpus, ``corpus:speaker`` when corpora are mixed."""
    if len({u.corpus for u in utterances}) > 1:
        return lambda key: f"{key[0]}:{key[1]}"
    return lambda key: key[1]


def _list(keys: set[SpeakerKey], show: Callable[[tuple[str, str]], str]) -> str:
    return ", ".join(show(k) for k in sorted(keys, key=_sort_key))
