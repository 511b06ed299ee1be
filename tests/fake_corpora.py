"""Fake corpus trees in the real on-disk formats, with tiny noise clips (0.1 s, 16 kHz).

Each ``make_<corpus>(root, ...)`` writes under ``root`` and returns it. The file lists are
module constants, so tests can state what a loader must return.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


def write_audio(path: Path, seconds: float = 0.1, seed: int = 0) -> Path:
    """Write low-level white noise as 16-bit PCM; the format (WAV/FLAC) follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.01 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))
    sf.write(path, noise.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return path


# IEMOCAP: per session, one improvised dialog whose turns alternate F, M with these codes.
IEMOCAP_CODES = ("neu", "hap", "exc", "ang", "sad", "fru", "xxx")
IEMOCAP_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
# Session 1 also has a scripted dialog: one turn with audio and one without.
IEMOCAP_SCRIPTED = ("Ses01M_script01_1", (("F000", "sad", True), ("M001", "neu", False)))


def iemocap_utterances(session: int) -> list[tuple[str, str]]:
    """``(utterance name, code)`` of the improvised dialog of ``session``."""
    dialog = f"Ses{session:02d}F_impro01"
    return [(f"{dialog}_{'FM'[i % 2]}{i // 2:03d}", code) for i, code in enumerate(IEMOCAP_CODES)]


def _iemocap_block(name: str, code: str, start: float) -> str:
    return (
        f"[{start:.4f} - {start + 1.5:.4f}]\t{name}\t{code}\t[2.5000, 3.0000, 3.5000]\n"
        "C-E2:\tNeutral;\t()\n"
        "C-E3:\tNeutral;\tsome comment ()\n"
        "A-E3:\tval 3; act 2; dom  2;\t()\n"
        "A-F1:\tval 2; act 2; dom  2;\t()\n\n"
    )


def make_iemocap(root: Path, suffix: str = ".wav") -> Path:
    """Five sessions; session 1 has a label line whose audio is missing."""
    for session in range(1, 6):
        dialogs = {
            f"Ses{session:02d}F_impro01": [(n, c, True) for n, c in iemocap_utterances(session)]
        }
        if session == 1:
            name, turns = IEMOCAP_SCRIPTED
            dialogs[name] = [(f"{name}_{turn}", code, audio) for turn, code, audio in turns]
        base = root / f"Session{session}"
        for dialog, turns in dialogs.items():
            text = IEMOCAP_HEADER + "".join(
                _iemocap_block(name, code, 2.0 * i) for i, (name, code, _) in enumerate(turns)
            )
            label_file = base / "dialog" / "EmoEvaluation" / f"{dialog}.txt"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text(text)
            for name, _, has_audio in turns:
                if has_audio:
                    write_audio(base / "sentences" / "wav" / dialog / f"{name}{suffix}")
        # Sub-folders of EmoEvaluation hold other annotations, in another format.
        (base / "dialog" / "EmoEvaluation" / "Categorical").mkdir(exist_ok=True)
        (base / "dialog" / "EmoEvaluation" / "Categorical" / "x_cat.txt").write_text("[junk\n")
    return root


EMODB_STEMS = (
    "03a01Wa",
    "03a02Nc",
    "08a01Fa",
    "08b01Tb",
    "09a05Ea",
    "09a07La",
    "10a01Ac",
    "10b03Wb",
)


def make_emodb(
    root: Path, suffix: str = ".wav", stems: tuple[str, ...] = EMODB_STEMS, seconds: float = 0.1
) -> Path:
    for i, stem in enumerate(stems):
        write_audio(root / "wav" / f"{stem}{suffix}", seconds=seconds, seed=i)
    return root


def ravdess_stems(actors: range = range(1, 25)) -> list[str]:
    """Two speech files per actor, emotions cycling through all eight codes."""
    stems = []
    for actor in actors:
        for rep in (1, 2):
            emotion = (2 * actor + rep) % 8 + 1
            stems.append(f"03-01-{emotion:02d}-{rep:02d}-01-{rep:02d}-{actor:02d}")
    return stems


def make_ravdess(root: Path, suffix: str = ".flac", actors: range = range(1, 25)) -> Path:
    for i, stem in enumerate(ravdess_stems(actors)):
        write_audio(root / f"Actor_{stem[-2:]}" / f"{stem}{suffix}", seed=i)
    return root


EMOVO_SPEAKERS = ("f1", "f2", "f3", "m1", "m2", "m3")
EMOVO_CODES = ("dis", "gio", "neu", "pau", "rab", "sor", "tri")


def make_emovo(root: Path, suffix: str = ".wav") -> Path:
    for speaker in EMOVO_SPEAKERS:
        for code in EMOVO_CODES:
            write_audio(root / speaker / f"{code}-{speaker}-b1{suffix}")
    return root


# (folder, stem) as in ASED v1: the letter's case varies, a name in the wrong folder is skipped
ASED_FILES = (
    ("01Neutral", "n1-01-01-01-01"),
    ("01Neutral", "n2-03-01-02-02"),
    ("02Fearful", "f1-01-02-01-01"),
    ("03Happy", "h7-02-01-02-02"),
    ("04Sad", "S4-04-01-01-03"),
    ("05Angry", "a5-03-01-02-03"),
    ("05Angry", "h9-01-01-01-03"),  # a happy letter in the angry folder
)


def make_ased(root: Path, suffix: str = ".wav") -> Path:
    for folder, stem in ASED_FILES:
        write_audio(root / folder / f"{stem}{suffix}")
    return root


CREMAD_STEMS = (
    "1001_DFA_ANG_XX",
    "1001_IEO_HAP_HI",
    "1002_DFA_NEU_XX",
    "1002_TIE_SAD_LO",
    "1003_ITS_DIS_MD",
    "1003_DFA_FEA_XX",
)
CREMAD_DEMOGRAPHICS = (("1001", "Male"), ("1002", "Female"), ("1003", "Female"))


def make_cremad(root: Path, suffix: str = ".wav", demographics: bool = True) -> Path:
    for stem in CREMAD_STEMS:
        write_audio(root / "AudioWAV" / f"{stem}{suffix}")
    if demographics:
        with (root / "VideoDemographics.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ActorID", "Age", "Sex", "Race", "Ethnicity"])
            for actor, sex in CREMAD_DEMOGRAPHICS:
                writer.writerow([actor, "51", sex, "Caucasian", "Not Hispanic"])
    return root


# (folder, stem) as in the Kaggle release: folder case and spelling vary, the stem decides.
TESS_FILES = (
    ("OAF_angry", "OAF_back_angry"),
    ("OAF_Pleasant_surprise", "OAF_back_ps"),
    ("OAF_Sad", "OAF_bath_sad"),
    ("YAF_fear", "YAF_dog_fear"),
    ("YAF_disgust", "YAF_dog_disgust"),
    ("YAF_neutral", "YAF_germ_neutral"),
    ("YAF_happy", "YAF_back_happy"),
)


def make_tess(root: Path, suffix: str = ".wav") -> Path:
    for folder, stem in TESS_FILES:
        write_audio(root / "TESS Toronto emotional speech set data" / folder / f"{stem}{suffix}")
    return root


SAVEE_STEMS = ("DC_a01", "DC_sa02", "JE_su01", "JE_d05", "JK_n01", "JK_f02", "KL_h03", "KL_n10")


def make_savee(root: Path, suffix: str = ".wav", nested: bool = False) -> Path:
    """Flat ``DC_a01.wav`` files, or the original ``AudioData/DC/a01.wav`` when ``nested``."""
    for stem in SAVEE_STEMS:
        speaker, name = stem.split("_")
        path = root / "AudioData" / speaker / name if nested else root / stem
        write_audio(path.with_name(path.name + suffix))
    return root


GENERIC_FILES = ("spk1/happy/a.wav", "spk1/sad/b.flac", "spk2/Angry/c.wav", "neutral/d.wav")


def make_generic_folder(root: Path) -> Path:
    for rel in GENERIC_FILES:
        write_audio(root / rel)
    return root


GENERIC_ROWS = (
    ("clips/a.wav", "happy", "spk1", "s1"),
    ("clips/b.flac", "sad", "spk1", "s1"),
    ("clips/c.wav", "", "spk2", "s2"),
)


def make_generic_csv(root: Path, rows: tuple[tuple[str, ...], ...] = GENERIC_ROWS) -> Path:
    """``root/table.csv`` (path,label,speaker,session) and its clips; returns the CSV path."""
    for row in rows:
        write_audio(root / row[0])
    table = root / "table.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker", "session"])
        writer.writerows(rows)
    return table


# Three-speaker EmoDB and EMOVO trees for cross-validation tests (leave-one-speaker-out: 3 folds).
SMALL_EMODB_STEMS = tuple(
    f"{s}a0{v}{c}{'ab'[v - 1]}" for s in ("03", "08", "10") for c in "WAFTN" for v in (1, 2)
)
SMALL_EMOVO_SPEAKERS = ("f1", "m1", "m2")


def make_small_emodb_emovo(root: Path) -> Path:
    """``root/emodb`` (three speakers, 0.5 s clips) and ``root/emovo`` (three speakers, every
    emotion, 0.3 s clips) in their real layouts."""
    for i, stem in enumerate(SMALL_EMODB_STEMS):
        write_audio(root / "emodb" / "wav" / f"{stem}.wav", seconds=0.5, seed=i)
    for i, speaker in enumerate(SMALL_EMOVO_SPEAKERS):
        for j, code in enumerate(EMOVO_CODES):
            path = root / "emovo" / speaker / f"{code}-{speaker}-b1.wav"
            write_audio(path, seconds=0.3, seed=10 * i + j)
    return root


# The four corpora read from their public repositories (git clones), in their on-disk layouts.
SPANISH_FILES = (
    "data/0/Alegria_1.WAV",
    "data/0/Ira__2.WAV",  # the release's double underscore
    "data/0/Asco_3.WAV",
    "data/7/Neutro.WAV",  # a take without its number
    "data/7/Miedo_10.WAV",
    "data/10/David_Aramburu.WAV",  # not an emotion: skipped with a warning
    "tests/Test1/Sorpresa_1.WAV",
    "tests/Test2/Tristeza_12.WAV",
)
SPANISH_MALFORMED = "data/13/Asco_11.WAV"


def make_spanish(root: Path) -> Path:
    """Stereo 48 kHz WAVs as in the repository, one more that is not audio (malformed)."""
    for i, rel in enumerate(SPANISH_FILES):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        wave = 0.01 * np.random.default_rng(i).standard_normal((4800, 2))
        sf.write(path, wave.astype(np.float32), 48000, subtype="PCM_16", format="WAV")
    (root / SPANISH_MALFORMED).parent.mkdir(parents=True, exist_ok=True)
    (root / SPANISH_MALFORMED).write_bytes(b"RIFF\x00\x00not a wave file")
    return root


KOREAN_FILES = (
    "plain-to-emotional/ema/wav/ema00001.wav",
    "plain-to-emotional/ema/wav/ema00101.wav",
    "plain-to-emotional/emf/wav/emf00201.wav",
    "emotional-to-emotional/nea/wav/nea00301.wav",
    "emotional-to-emotional/neo/wav/neo00105.wav",
)


def make_korean(root: Path) -> Path:
    """The two emotional script sets, plus a neutral-speech folder the loader must not read."""
    base = root / "Dataset" / "SpeechCorpus"
    for i, rel in enumerate(KOREAN_FILES):
        write_audio(base / "Emotional" / rel, seed=i)
    write_audio(base / "Neutral" / "ada" / "wav" / "ada00001.wav")
    return root


TURKISH_FILES = (
    "Angry/1157_kz_acik.wav",
    "Calm/1157_kz_algi.wav",
    "Happy/1234_hl_beste.wav",
    "Sad/7895_sk_cay.wav",
)


def make_turkish(root: Path) -> Path:
    """``Sound Source`` and a ``Model Output`` folder of filtered copies (left out)."""
    for i, rel in enumerate(TURKISH_FILES):
        write_audio(root / "Sound Source" / rel, seed=i)
    write_audio(root / "Model Output for Test Data" / "testEmotions500HighPass" / "x.wav")
    return root


COMMANDS_USER = "9dd2014cc6e95226ece8fd97fa8296acea7957d841ba48e82486e842"
COMMANDS_UNKNOWN = "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f"
COMMANDS_FILES = (
    f"Railway/bacho-safe-calm-20190710134657-{COMMANDS_UNKNOWN}.wav",
    f"Metro/help-scream-fearful-20190710134658-{COMMANDS_UNKNOWN}.wav",
    f"Near Lake/stop-glass break-angry-1562907046662-{COMMANDS_USER}.wav",
    f"House/yes-safe-happy-20190701193439-{COMMANDS_USER}.wav",
    f"House/go-safe-None-20190701193440-{COMMANDS_USER}.wav",
    f"Misc/background-safe-calm-20190701193438-{COMMANDS_UNKNOWN}.wav",
)


def make_commands(root: Path) -> Path:
    for i, rel in enumerate(COMMANDS_FILES):
        write_audio(root / rel, seed=i)
    return root
