"""Corpus loaders on fake trees in the real formats, and on the real corpora when present."""

from __future__ import annotations

import warnings
from collections import Counter

import fake_corpora as fake
import pytest
from real_audio import corpus_root, extra_corpus_root

import emofuse.corpora.base as base
from emofuse.corpora import CORPORA, CorpusError, CorpusWarning, describe, load_corpus
from emofuse.corpora.labels import apply_task, default_task, get_task


def table(utts):
    return sorted((u.id, u.label, u.speaker, u.session, u.gender) for u in utts)


def test_registry_and_unknown_name(tmp_path):
    assert set(CORPORA) == {
        "iemocap",
        "emodb",
        "ravdess",
        "emovo",
        "ased",
        "cremad",
        "tess",
        "savee",
        "spanish",
        "korean",
        "turkish",
        "commands",
        "generic",
    }
    with pytest.raises(CorpusError, match="unknown corpus 'nope'.*emodb.*ravdess"):
        load_corpus("nope", tmp_path)


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_missing_root(tmp_path, name):
    with pytest.raises(CorpusError, match=f"{tmp_path / 'absent'}.*expected"):
        load_corpus(name, tmp_path / "absent")


@pytest.mark.parametrize(
    "name",
    ["iemocap", "emodb", "ravdess", "emovo", "ased", "cremad", "tess", "savee", "spanish",
     "korean", "turkish", "commands"],
)  # fmt: skip
def test_wrong_tree(tmp_path, name):
    fake.make_generic_folder(tmp_path)  # a tree of other names
    if name == "emodb":
        fake.write_audio(tmp_path / "wav" / "hello.wav")
    with pytest.raises(CorpusError, match="expected"):
        load_corpus(name, tmp_path)


# IEMOCAP ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    root = fake.make_iemocap(tmp_path_factory.mktemp("iemocap"))
    with pytest.warns(CorpusWarning, match="1 labelled utterance.*Ses01M_script01_1_M001"):
        return load_corpus("iemocap", root)


def test_iemocap_records(iemocap):
    labels = {"neu": "neutral", "hap": "happy", "exc": "excited", "ang": "angry", "sad": "sad"}
    expected = [
        (name, labels.get(code), f"{s}{name[-4]}", str(s), name[-4])
        for s in range(1, 6)
        for name, code in fake.iemocap_utterances(s)
    ]
    expected.append(("Ses01M_script01_1_F000", "sad", "1F", "1", "F"))
    assert table(iemocap) == sorted(expected)
    first = next(u for u in iemocap if u.id == "Ses01F_impro01_F000")
    assert first.path.name == "Ses01F_impro01_F000.wav"
    assert first.path.parent.name == "Ses01F_impro01"
    assert first.duration is None
    assert first.extras == {
        "code": "neu",
        "dialog": "Ses01F_impro01",
        "start": 0.0,
        "end": 1.5,
        "valence": 2.5,
        "arousal": 3.0,
        "dominance": 3.5,
    }
    assert {u.extras["code"] for u in iemocap if u.label is None} == {"fru", "xxx"}


def test_iemocap_four_classes(iemocap):
    selection = apply_task(iemocap, default_task("iemocap"))
    assert selection.task.name == "iemocap4"
    assert Counter(u.label for u in selection.utterances) == {
        "neutral": 5,
        "happy": 10,
        "angry": 5,
        "sad": 6,
    }
    assert selection.merged == {"excited->happy": 5}
    assert selection.dropped_codes == {"iemocap:fru": 5, "iemocap:xxx": 5}
    assert selection.dropped_labels == {}
    excited = [u for u in selection.utterances if u.extras["code"] == "exc"]
    assert {(u.label, u.extras["source_label"]) for u in excited} == {("happy", "excited")}


def test_iemocap_flac(tmp_path):
    fake.make_iemocap(tmp_path, suffix=".flac")
    with pytest.warns(CorpusWarning):
        utts = load_corpus("iemocap", tmp_path)
    assert len(utts) == 36 and all(u.path.suffix == ".flac" for u in utts)


@pytest.mark.parametrize(
    "bad",
    [
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu",
        "[6.2901 - 8.2357] Ses01F_impro01_F000 neu [2.5, 2.5, 2.5]",
        "[6.2901 to 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]",
        "[6.2901 - 8.2357]\tnot_a_name\tneu\t[2.5000, 2.5000, 2.5000]",
    ],
)
def test_iemocap_malformed_line(tmp_path, bad):
    fake.make_iemocap(tmp_path)
    label_file = tmp_path / "Session2" / "dialog" / "EmoEvaluation" / "Ses02F_impro01.txt"
    lines = label_file.read_text().splitlines()
    lines.insert(8, bad)
    label_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"Ses02F_impro01\.txt:9: malformed IEMOCAP label line"):
        load_corpus("iemocap", tmp_path)


def test_iemocap_unknown_code_kept(tmp_path):
    fake.make_iemocap(tmp_path)
    label_file = tmp_path / "Session3" / "dialog" / "EmoEvaluation" / "Ses03F_impro01.txt"
    label_file.write_text(label_file.read_text().replace("\tneu\t", "\tzzz\t"))
    with pytest.warns(CorpusWarning):
        utts = load_corpus("iemocap", tmp_path)
    odd = [u for u in utts if u.extras["code"] == "zzz"]
    assert [(u.id, u.label) for u in odd] == [("Ses03F_impro01_F000", None)]
    assert "<none:zzz> 1" in describe(utts)


# Filename-coded corpora -------------------------------------------------------------------------


def test_emodb(tmp_path):
    utts = load_corpus("emodb", fake.make_emodb(tmp_path, suffix=".flac"))
    assert table(utts) == [
        ("03a01Wa", "angry", "03", None, "M"),
        ("03a02Nc", "neutral", "03", None, "M"),
        ("08a01Fa", "happy", "08", None, "F"),
        ("08b01Tb", "sad", "08", None, "F"),
        ("09a05Ea", "disgusted", "09", None, "F"),
        ("09a07La", "bored", "09", None, "F"),
        ("10a01Ac", "fearful", "10", None, "M"),
        ("10b03Wb", "angry", "10", None, "M"),
    ]
    assert utts[0].extras == {"code": "W", "text": "a01", "version": "a"}
    assert all(u.corpus == "emodb" and u.path.suffix == ".flac" for u in utts)


def test_emodb_skips_foreign_names_with_warning(tmp_path):
    fake.make_emodb(tmp_path, stems=("03a01Wa", "03a01Xa"))
    fake.write_audio(tmp_path / "wav" / "notes.wav")
    with pytest.warns(CorpusWarning, match="skipped 1 audio file.*notes.wav"):
        utts = load_corpus("emodb", tmp_path)
    assert [(u.id, u.label, u.extras["code"]) for u in utts] == [
        ("03a01Wa", "angry", "W"),
        ("03a01Xa", None, "X"),
    ]


def test_duplicate_wav_and_flac(tmp_path):
    fake.make_emodb(tmp_path, stems=("03a01Wa",))
    fake.make_emodb(tmp_path, stems=("03a01Wa",), suffix=".flac")
    with pytest.raises(CorpusError, match="two audio files for id '03a01Wa'"):
        load_corpus("emodb", tmp_path)


def test_ravdess(tmp_path):
    fake.make_ravdess(tmp_path, actors=range(1, 3))
    fake.write_audio(tmp_path / "Actor_01" / "03-02-03-01-01-01-01.flac")  # song
    with pytest.warns(CorpusWarning, match="skipped 1"):
        utts = load_corpus("ravdess", tmp_path)
    assert table(utts) == [
        ("03-01-04-01-01-01-01", "sad", "01", None, "M"),
        ("03-01-05-02-01-02-01", "angry", "01", None, "M"),
        ("03-01-06-01-01-01-02", "fearful", "02", None, "F"),
        ("03-01-07-02-01-02-02", "disgusted", "02", None, "F"),
    ]
    first = next(u for u in utts if u.id == "03-01-05-02-01-02-01")
    assert first.extras == {
        "code": "05",
        "intensity": "strong",
        "statement": "01",
        "repetition": "02",
    }


def test_ravdess_all_codes(tmp_path):
    utts = load_corpus("ravdess", fake.make_ravdess(tmp_path))
    assert len(utts) == 48 and len({u.speaker for u in utts}) == 24
    assert {u.label for u in utts} == {
        "neutral", "calm", "happy", "sad", "angry", "fearful", "disgusted", "surprised",
    }  # fmt: skip


def test_emovo(tmp_path):
    utts = load_corpus("emovo", fake.make_emovo(tmp_path))
    assert len(utts) == 42
    by_id = {u.id: u for u in utts}
    assert table([by_id["dis-f1-b1"], by_id["gio-m3-b1"], by_id["pau-f2-b1"]]) == [
        ("dis-f1-b1", "disgusted", "f1", None, "F"),
        ("gio-m3-b1", "happy", "m3", None, "M"),
        ("pau-f2-b1", "fearful", "f2", None, "F"),
    ]
    assert Counter(u.label for u in utts) == {
        label: 6
        for label in ("disgusted", "happy", "neutral", "fearful", "angry", "surprised", "sad")
    }


def test_ased(tmp_path):
    with pytest.warns(CorpusWarning, match="skipped 1 audio file.*h9-01-01-01-03"):
        utts = load_corpus("ased", fake.make_ased(tmp_path))
    by_id = {u.id: u for u in utts}
    assert table(utts) == [
        ("S4-04-01-01-03", "sad", "03", None, "F"),  # upper-case letter
        ("a5-03-01-02-03", "angry", "03", None, "M"),
        ("f1-01-02-01-01", "fearful", "01", None, "F"),
        ("h7-02-01-02-02", "happy", "02", None, "M"),
        ("n1-01-01-01-01", "neutral", "01", None, "F"),
        ("n2-03-01-02-02", "neutral", "02", None, "M"),
    ]
    assert by_id["h7-02-01-02-02"].extras == {
        "code": "h", "sentence": "02", "repetition": "01", "common": True}  # fmt: skip
    assert not by_id["a5-03-01-02-03"].extras["common"]
    assert {u.label for u in utts} <= set(get_task("ased5").labels)


@pytest.mark.parametrize("demographics", [True, False])
def test_cremad(tmp_path, demographics):
    utts = load_corpus("cremad", fake.make_cremad(tmp_path, demographics=demographics))
    genders = {"1001": "M", "1002": "F", "1003": "F"} if demographics else {}
    expected = [
        ("1001_DFA_ANG_XX", "angry"),
        ("1001_IEO_HAP_HI", "happy"),
        ("1002_DFA_NEU_XX", "neutral"),
        ("1002_TIE_SAD_LO", "sad"),
        ("1003_DFA_FEA_XX", "fearful"),
        ("1003_ITS_DIS_MD", "disgusted"),
    ]
    assert table(utts) == [(i, lab, i[:4], None, genders.get(i[:4])) for i, lab in expected]
    assert utts[0].extras == {"code": "ANG", "sentence": "DFA", "level": "XX"}


def test_tess(tmp_path):
    utts = load_corpus("tess", fake.make_tess(tmp_path))
    assert table(utts) == [
        ("OAF_back_angry", "angry", "OAF", None, "F"),
        ("OAF_back_ps", "surprised", "OAF", None, "F"),
        ("OAF_bath_sad", "sad", "OAF", None, "F"),
        ("YAF_back_happy", "happy", "YAF", None, "F"),
        ("YAF_dog_disgust", "disgusted", "YAF", None, "F"),
        ("YAF_dog_fear", "fearful", "YAF", None, "F"),
        ("YAF_germ_neutral", "neutral", "YAF", None, "F"),
    ]


@pytest.mark.parametrize("nested", [False, True])
def test_savee(tmp_path, nested):
    utts = load_corpus("savee", fake.make_savee(tmp_path, nested=nested))
    assert table(utts) == [
        ("DC_a01", "angry", "DC", None, "M"),
        ("DC_sa02", "sad", "DC", None, "M"),
        ("JE_d05", "disgusted", "JE", None, "M"),
        ("JE_su01", "surprised", "JE", None, "M"),
        ("JK_f02", "fearful", "JK", None, "M"),
        ("JK_n01", "neutral", "JK", None, "M"),
        ("KL_h03", "happy", "KL", None, "M"),
        ("KL_n10", "neutral", "KL", None, "M"),
    ]


# Generic folder / CSV ---------------------------------------------------------------------------


def test_generic_folder(tmp_path):
    utts = load_corpus("generic", fake.make_generic_folder(tmp_path))
    assert table(utts) == [
        ("neutral/d", "neutral", "unknown", None, None),
        ("spk1/happy/a", "happy", "spk1", None, None),
        ("spk1/sad/b", "sad", "spk1", None, None),
        ("spk2/Angry/c", "angry", "spk2", None, None),
    ]
    assert next(u for u in utts if u.speaker == "spk2").extras == {"code": "Angry"}


def test_generic_folder_bad_label(tmp_path):
    fake.write_audio(tmp_path / "spk1" / "joy" / "a.wav")
    with pytest.raises(CorpusError, match=r"joy.*unknown label 'joy'.*neutral, calm"):
        load_corpus("generic", tmp_path)


def test_generic_folder_file_at_root(tmp_path):
    fake.write_audio(tmp_path / "loose.wav")
    with pytest.raises(CorpusError, match="loose.wav is not inside a label folder"):
        load_corpus("generic", tmp_path)


def test_generic_csv(tmp_path):
    csv_path = fake.make_generic_csv(tmp_path)
    utts = load_corpus("generic", csv_path)
    assert table(utts) == [
        ("clips/a", "happy", "spk1", "s1", None),
        ("clips/b", "sad", "spk1", "s1", None),
        ("clips/c", None, "spk2", "s2", None),
    ]
    assert utts[0].path == tmp_path / "clips" / "a.wav"


def test_generic_csv_bad_label_names_line(tmp_path):
    rows = (*fake.GENERIC_ROWS, ("clips/e.wav", "joy", "spk3", "s3"))
    csv_path = fake.make_generic_csv(tmp_path, rows=rows)
    with pytest.raises(CorpusError, match=r"table\.csv:5: unknown label 'joy'"):
        load_corpus("generic", csv_path)


def test_generic_csv_missing_audio_and_columns(tmp_path):
    csv_path = fake.make_generic_csv(tmp_path)
    (tmp_path / "clips" / "b.flac").unlink()
    with pytest.raises(CorpusError, match=r"table\.csv:3: audio file .*b\.flac does not exist"):
        load_corpus("generic", csv_path)
    csv_path.write_text("file,label\nclips/a.wav,happy\n")
    with pytest.raises(CorpusError, match=r"missing column\(s\) \['path', 'speaker'\]"):
        load_corpus("generic", csv_path)


def test_manifest_decodes_no_audio(tmp_path, monkeypatch):
    fake.make_emovo(tmp_path)
    import soundfile

    def refuse(*args, **kwargs):
        raise AssertionError("audio decoded while building a manifest")

    monkeypatch.setattr(soundfile, "read", refuse)
    monkeypatch.setattr(soundfile, "info", refuse)
    assert all(u.duration is None for u in load_corpus("emovo", tmp_path))


def test_describe(tmp_path):
    text = describe(load_corpus("emodb", fake.make_emodb(tmp_path)))
    assert text.splitlines() == [
        "8 utterances",
        "corpus: emodb 8",
        "label (as in the corpus): angry 2, bored 1, disgusted 1, fearful 1, happy 1, neutral 1, "
        "sad 1",
        "speaker: 03 2, 08 2, 09 2, 10 2",
    ]  # no session line: EmoDB has no sessions


def test_natural_key():
    assert sorted(["10", "9", "Actor_10", "Actor_2"], key=base.natural_key) == [
        "9",
        "10",
        "Actor_2",
        "Actor_10",
    ]


# Real corpora -----------------------------------------------------------------------------------


def test_real_emodb():
    utts = load_corpus("emodb", corpus_root("emodb"))
    assert len(utts) == 535
    assert Counter(u.label for u in utts) == {
        "angry": 127,
        "bored": 81,
        "disgusted": 46,
        "fearful": 69,
        "happy": 71,
        "sad": 62,
        "neutral": 79,
    }
    assert len({u.speaker for u in utts}) == 10
    assert all(u.gender in ("F", "M") for u in utts)


def test_real_ravdess():
    utts = load_corpus("ravdess", corpus_root("ravdess"))
    assert len(utts) == 1440
    counts = Counter(u.label for u in utts)
    assert counts.pop("neutral") == 96 and set(counts.values()) == {192} and len(counts) == 7
    assert len({u.speaker for u in utts}) == 24


def test_real_ased():
    utts = load_corpus("ased", corpus_root("ased"))
    assert len(utts) == 2474 and len({u.speaker for u in utts}) == 65
    assert Counter(u.label for u in utts) == {
        "neutral": 522, "fearful": 510, "happy": 486, "sad": 470, "angry": 486}  # fmt: skip
    common = [u for u in utts if u.extras["common"]]
    assert len(common) == 624 and {u.extras["sentence"] for u in common} == {"01", "02"}
    assert {u.label for u in common} == set(get_task("ased5").labels)


def test_real_emovo():
    utts = load_corpus("emovo", corpus_root("emovo"))
    assert len(utts) == 588
    assert Counter(u.label for u in utts) == {
        label: 84
        for label in ("angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
    }
    assert len({u.speaker for u in utts}) == 6


# The four corpora of public repositories ------------------------------------------------------


def test_spanish(tmp_path):
    root = fake.make_spanish(tmp_path)
    with pytest.warns(CorpusWarning) as caught:
        utts = load_corpus("spanish", root)
    messages = " ".join(str(w.message) for w in caught)
    assert "header cannot be read" in messages and "Asco_11.WAV" in messages
    assert "David_Aramburu.WAV" in messages
    assert table(utts) == [
        ("0/Alegria_1", "happy", "0", None, None),
        ("0/Asco_3", "disgusted", "0", None, None),
        ("0/Ira__2", "angry", "0", None, None),
        ("7/Miedo_10", "fearful", "7", None, None),
        ("7/Neutro", "neutral", "7", None, None),
        ("Test1/Sorpresa_1", "surprised", "Test1", None, None),
        ("Test2/Tristeza_12", "sad", "Test2", None, None),
    ]
    assert apply_task(utts, default_task("spanish")).task.name == "spanish7"


def test_korean(tmp_path):
    utts = load_corpus("korean", fake.make_korean(tmp_path))
    assert table(utts) == [
        ("ema00001", "neutral", "ema", "plain-to-emotional", "F"),
        ("ema00101", "happy", "ema", "plain-to-emotional", "F"),
        ("emf00201", "angry", "emf", "plain-to-emotional", "M"),
        ("nea00301", "sad", "nea", "emotional-to-emotional", "F"),
        ("neo00105", "happy", "neo", "emotional-to-emotional", "M"),
    ]  # the Neutral folder is not read
    assert default_task("korean").labels == ("neutral", "happy", "sad", "angry")


def test_turkish(tmp_path):
    utts = load_corpus("turkish", fake.make_turkish(tmp_path))
    assert table(utts) == [
        ("Angry/1157_kz_acik", "angry", "1157", None, None),
        ("Calm/1157_kz_algi", "calm", "1157", None, None),
        ("Happy/1234_hl_beste", "happy", "1234", None, None),
        ("Sad/7895_sk_cay", "sad", "7895", None, None),
    ]  # the filtered copies of Model Output are left out
    selection = apply_task(utts, default_task("turkish"))
    assert [u.label for u in selection.utterances] == ["angry", "neutral", "happy", "sad"]
    assert selection.merged == {"calm->neutral": 1}


def test_commands(tmp_path):
    utts = load_corpus("commands", fake.make_commands(tmp_path))
    by_id = {u.id.split("-")[0]: u for u in utts}
    assert {k: u.label for k, u in by_id.items()} == {
        "bacho": "calm", "help": "fearful", "stop": "angry", "yes": "happy", "go": None,
        "background": None,
    }  # fmt: skip
    assert by_id["stop"].extras["environment"] == "glass break"
    assert by_id["stop"].extras["place"] == "Near Lake"
    assert by_id["background"].extras["code"] == "background"
    assert by_id["bacho"].speaker == fake.COMMANDS_UNKNOWN
    selection = apply_task(utts, default_task("commands"))
    assert sorted(u.label for u in selection.utterances) == ["angry", "fearful", "happy", "neutral"]
    assert selection.dropped_codes == {"commands:None": 1, "commands:background": 1}


@pytest.mark.parametrize(
    ("name", "files", "speakers", "task_counts"),
    [
        ("spanish", 1321, 16, None),
        ("korean", 300, 15, {"neutral": 75, "happy": 75, "sad": 75, "angry": 75}),
        ("turkish", 1735, 6, {"neutral": 408, "happy": 357, "sad": 483, "angry": 487}),
        ("commands", 7741, None, None),
    ],
)
def test_public_repositories_as_cloned(name, files, speakers, task_counts):
    """The corpora as a ``git clone`` at the named commit has them (absent here: skipped)."""
    root = extra_corpus_root(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CorpusWarning)
        utts = load_corpus(name, root)
    assert len(utts) >= files - 10
    if speakers is not None:
        assert len({u.speaker for u in utts}) == speakers
    selection = apply_task(utts, default_task(name))
    if task_counts is not None:
        assert Counter(u.label for u in selection.utterances) == task_counts
    assert set(selection.task.labels) == {u.label for u in selection.utterances}
