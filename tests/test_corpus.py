"""tympan.audio.corpus and `tympan corpus synth`: real espeak-ng corpora on disk."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tympan.audio.corpus import Corpus, load_corpus, synth_corpus
from tympan.cli.app import main
from tympan.errors import InvalidInputError

SMALL = {"vocab": "digits", "voices": 12, "langs": ["en", "ko"], "utterances_per_speaker": 2,
         "seed": 0, "progress": False}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return synth_corpus(tmp_path_factory.mktemp("corpus") / "digits", **SMALL)


def mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def test_twelve_distinct_speakers_split_eight_two_two(corpus: Corpus) -> None:
    identities = {(s.variant, s.pitch, s.rate) for s in corpus.speakers}
    assert len(corpus.speakers) == 12 and len(identities) == 12
    assert len({s.variant for s in corpus.speakers}) == 12
    by_split = {name: {u.speaker for u in corpus.split(name)}
                for name in ("train", "valid", "test")}
    assert [len(by_split[n]) for n in ("train", "valid", "test")] == [8, 2, 2]
    assert not (by_split["train"] & by_split["valid"] or by_split["train"] & by_split["test"]
                or by_split["valid"] & by_split["test"])
    assert len(corpus.utterances) == 12 * 2 * 2


def test_files_match_the_manifest(corpus: Corpus) -> None:
    for u in corpus.utterances:
        path = corpus.file(u)
        assert path.relative_to(corpus.root).parts[:2] == (u.split, u.speaker)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == u.sha256
        audio, rate = soundfile.read(path, dtype="float32")
        info = soundfile.info(path)
        assert info.format == "FLAC" and info.channels == 1 and rate == u.sample_rate == 16000
        assert u.duration == pytest.approx(len(audio) / rate, abs=1e-5)
        assert 0.5 < u.duration < 6.0 and float(np.abs(audio).max()) > 0.05
        starts = [e.start for e in u.events]
        assert starts == sorted(starts) and starts[-1] <= u.duration + 1e-3


def test_manifests_on_disk(corpus: Corpus) -> None:
    lines = (corpus.root / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == len(corpus.utterances)
    assert set(rows[0]) == {"path", "text", "speaker", "lang", "split", "duration",
                            "sample_rate", "sha256", "events"}
    assert {"kind", "start", "text"} == set(rows[0]["events"][0])
    for split in ("train", "valid", "test"):
        lines = (corpus.root / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == [r for r in rows if r["split"] == split]
    assert load_corpus(corpus.root) == corpus


def test_texts_are_digit_words_in_each_language(corpus: Corpus) -> None:
    english = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
    for u in corpus.utterances:
        words = u.text.split()
        assert 3 <= len(words) <= 5
        if u.lang == "en":
            assert set(words) <= english
        else:
            assert u.lang == "ko" and all("\uac00" <= ch <= "\ud7a3" for ch in "".join(words))


def test_same_seed_same_bytes_other_seed_other_corpus(tmp_path: Path) -> None:
    args = {"vocab": "commands", "voices": 3, "utterances_per_speaker": 2, "progress": False}
    a = synth_corpus(tmp_path / "a", **args)
    b = synth_corpus(tmp_path / "b", **args)
    c = synth_corpus(tmp_path / "c", **args, seed=1)
    assert [(u.path, u.sha256) for u in a.utterances] == [(u.path, u.sha256) for u in b.utterances]
    assert (tmp_path / "a" / "manifest.jsonl").read_bytes() == \
        (tmp_path / "b" / "manifest.jsonl").read_bytes()
    assert {u.sha256 for u in a.utterances}.isdisjoint({u.sha256 for u in c.utterances})


def test_a_second_call_reuses_the_corpus(corpus: Corpus) -> None:
    before = mtimes(corpus.root)
    started = time.perf_counter()
    again = synth_corpus(corpus.root, **SMALL)
    assert time.perf_counter() - started < 1.0  # generous: it reads two small files
    assert again == corpus and mtimes(corpus.root) == before


def test_other_arguments_are_refused_unless_forced(tmp_path: Path) -> None:
    synth_corpus(tmp_path, vocab="digits", voices=3, utterances_per_speaker=1, progress=False)
    with pytest.raises(InvalidInputError, match=r"other arguments.*vocab='digits'.*--force"):
        synth_corpus(tmp_path, vocab="sentences", voices=3, utterances_per_speaker=1,
                     progress=False)
    replaced = synth_corpus(tmp_path, vocab="sentences", voices=4, utterances_per_speaker=1,
                            progress=False, force=True)
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.flac")}
    assert on_disk == {u.path for u in replaced.utterances} and len(on_disk) == 4
    assert json.loads((tmp_path / "corpus.json").read_text())["arguments"]["vocab"] == "sentences"


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"vocab": "animals"}, "'animals'"),
    ({"voices": 2}, "voices=2"),
    ({"voices": 301}, "voices=301"),
    ({"langs": ["en", "xx"]}, "'xx'"),
    ({"langs": []}, "language"),
    ({"utterances_per_speaker": 0}, "utterances_per_speaker=0"),
])
def test_bad_arguments_are_clear_errors(tmp_path: Path, kwargs: dict, named: str) -> None:
    with pytest.raises(InvalidInputError, match=named):
        synth_corpus(tmp_path, **{"progress": False, **kwargs})
    assert not any(tmp_path.iterdir())


def test_the_cli_makes_a_corpus_and_prints_a_summary(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["corpus", "synth", "--vocab", "sentences", "--voices", "3", "--langs", "en,ko",
            "--per-speaker", "1", "--seed", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "6 utterances (2 train, 2 valid, 2 test) from 3 speakers" in out
    assert str(tmp_path.resolve()) in out
    assert len(load_corpus(tmp_path).utterances) == 6
    assert main([*argv[:-4], "--seed", "3", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--force" in err and err.count("\n") == 1
    assert main([*argv[:-4], "--seed", "3", "--out", str(tmp_path), "--force"]) == 0
