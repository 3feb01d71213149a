"""The run query language (issue 17, item 2): one grammar for `tympan runs --where`,
`GET /api/runs?where=` and the UI's filter box; config and metric predicates, tags, status and
text search, sorts on any config key or metric summary, unknown keys refused with the nearest
ones suggested; all evaluated by the database, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import tympan
from conftest import fresh_pg_database, require_postgres
from tympan.errors import InvalidInputError
from tympan.records.groups import group_runs
from tympan.records.language import Condition, parse_where
from tympan.records.query import RunFilter, RunQuery
from tympan.records.table import query_runs
from tympan.track.manage import delete_runs
from tympan.track.stores import close_stores, shared_store

# (name, config, tags, status, test/wer values)
RUNS = [
    ("conv-0", {"model": {"encoder": "conv"}, "lr": 1e-3, "seed": 0, "mfcc": True},
     ["sweep", "mfcc"], "finished", [0.4, 0.30]),
    ("conv-1", {"model": {"encoder": "conv"}, "lr": 1e-3, "seed": 1, "mfcc": True},
     ["sweep", "mfcc"], "finished", [0.35, 0.32]),
    ("gru-0", {"model": {"encoder": "gru"}, "lr": 3e-4, "seed": 0, "mfcc": False},
     ["sweep"], "finished", [0.2, 0.08]),
    ("gru-1", {"model": {"encoder": "gru"}, "lr": 3e-4, "seed": 1, "mfcc": False},
     ["sweep"], "finished", [0.25, 0.09]),
    ("lstm broken", {"model": {"encoder": "lstm"}, "lr": 1e-2, "seed": 0, "note": "3"},
     [], "failed", [float("nan")]),
    ("baseline", {"model": {"encoder": "transformer"}, "lr": "auto"},
     ["baseline"], "finished", []),
]


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[str]:
    """One store per backend holding RUNS (and a run of another project)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TYMPAN_CAPTURE_ENV", "0")
        mp.setenv("TYMPAN_SYSTEM_METRICS", "0")
        mp.setenv("TYMPAN_CONSOLE", "0")
        if request.param == "sqlite":
            where = str(tmp_path_factory.mktemp("query") / "store")
            _fill(where)
            yield where
        else:
            require_postgres()
            with fresh_pg_database() as where:
                _fill(where)
                yield where
    close_stores()


def _fill(where: str) -> None:
    for name, config, tags, status, wers in RUNS:
        run = tympan.init(project="asr", name=name, config=config, tags=tags, store=where)
        for step, wer in enumerate(wers):
            run.log({"test/wer": wer, "train/loss": 1.0 / (step + 1)}, step=step)
        run.finish(status=status)
    other = tympan.init(project="tts", name="other", config={"vocoder": "hifigan"},
                        store=where)
    other.log({"mel/l1": 0.5}, step=0)
    other.finish()


def names(where: str, text: str | list[str] | dict | None = None, **options) -> list[str]:
    query = RunQuery.from_options(project=options.pop("project", "asr"), where=text,
                                  **options)
    return [r.name for r in query_runs(shared_store(where), query).runs]


def test_config_predicates_compare_numbers_as_numbers_and_text_as_text(lab: str) -> None:
    assert set(names(lab, "model.encoder = gru")) == {"gru-0", "gru-1"}
    assert set(names(lab, "model.encoder in (conv, gru)")) == {"conv-0", "conv-1", "gru-0",
                                                               "gru-1"}
    assert set(names(lab, "model.encoder not in (conv, gru)")) == {"lstm broken", "baseline"}
    assert set(names(lab, "lr >= 1e-3")) == {"conv-0", "conv-1", "lstm broken"}
    assert set(names(lab, "lr < 0.001")) == {"gru-0", "gru-1"}  # "auto" is no number
    assert set(names(lab, "lr = 0.0003")) == {"gru-0", "gru-1"}  # 3e-4 as a number
    assert set(names(lab, "lr = auto")) == {"baseline"}
    assert set(names(lab, "lr != auto")) == {"conv-0", "conv-1", "gru-0", "gru-1",
                                             "lstm broken"}
    assert set(names(lab, "mfcc = true")) == {"conv-0", "conv-1"}
    assert set(names(lab, "mfcc = false")) == {"gru-0", "gru-1"}
    assert names(lab, "note = 3") == ["lstm broken"]  # the string "3"
    assert set(names(lab, "model.encoder ~ R")) == {"gru-0", "gru-1", "baseline"}
    assert set(names(lab, "model.encoder !~ r")) == {"conv-0", "conv-1", "lstm broken"}
    assert set(names(lab, ["model.encoder = conv", "seed = 1"])) == {"conv-1"}
    assert set(names(lab, "model.encoder = conv AND seed = 1")) == {"conv-1"}
    assert names(lab, "config:model.encoder = gru and config:seed = 0") == ["gru-0"]
    assert names(lab, {"model.encoder": "gru", "seed": 0}) == ["gru-0"]  # find_runs' mapping


def test_metric_predicates_use_their_summaries(lab: str) -> None:
    assert set(names(lab, "test/wer.min < 0.1")) == {"gru-0", "gru-1"}
    assert set(names(lab, "test/wer < 0.31")) == {"conv-0", "gru-0", "gru-1"}  # last
    assert set(names(lab, "test/wer.max >= 0.35")) == {"conv-0", "conv-1"}
    assert set(names(lab, "test/wer.count = 2")) == {"conv-0", "conv-1", "gru-0", "gru-1"}
    assert set(names(lab, "metric:test/wer.min != 0.08")) == {"conv-0", "conv-1", "gru-1"}
    assert names(lab, "test/wer.min < 0.31 and train/loss.max > 0", sort="test/wer.max",
                 descending=True) == ["conv-0", "gru-1", "gru-0"]  # filter and sort on metrics
    # NaN and a missing metric match nothing, negations included
    assert "lstm broken" not in names(lab, "test/wer.last != 1")
    assert "baseline" not in names(lab, "test/wer.last != 1")


def test_tags_status_fields_and_text(lab: str) -> None:
    assert set(names(lab, "tags has mfcc")) == {"conv-0", "conv-1"}
    assert set(names(lab, "tags not has sweep")) == {"lstm broken", "baseline"}
    assert set(names(lab, "status != finished")) == {"lstm broken"}
    assert set(names(lab, "status in (failed, crashed)")) == {"lstm broken"}
    assert set(names(lab, "name ~ GRU")) == {"gru-0", "gru-1"}
    assert names(lab, "broken") == ["lstm broken"]  # a bare word searches name and id
    assert names(lab, '"lstm b"') == ["lstm broken"]
    assert set(names(lab, "seed = 1")) == {"conv-1", "gru-1"}  # the config's seed
    assert set(names(lab, "project = tts", project=None)) == {"other"}
    assert names(lab, "project = nowhere", project=None) == []
    assert names(lab, "tags has nothing-tagged-so") == []


def test_sorts_on_config_keys_and_metric_summaries_missing_last(lab: str) -> None:
    by_wer = names(lab, sort="test/wer.min")  # NaN and missing last
    assert by_wer[:4] == ["gru-0", "gru-1", "conv-0", "conv-1"]
    assert set(by_wer[4:]) == {"lstm broken", "baseline"}
    by_lr = names(lab, sort="lr")  # numbers first, then text, missing last
    assert set(by_lr[:2]) == {"gru-0", "gru-1"}
    assert set(by_lr[2:4]) == {"conv-0", "conv-1"}
    assert by_lr[4:] == ["lstm broken", "baseline"]
    by_lr_desc = names(lab, sort="config:lr", descending=True)
    assert by_lr_desc[0] == "baseline" and by_lr_desc[1] == "lstm broken"
    assert names(lab, sort="note")[0] == "lstm broken"  # the only run with a note
    page = query_runs(shared_store(lab), RunQuery.from_options(
        project="asr", where="tags has sweep", sort="test/wer.max", descending=True,
        limit=2, offset=1))
    assert page.total == 4 and [r.name for r in page.runs] == ["conv-1", "gru-1"]


def test_unknown_keys_are_refused_with_the_nearest_ones(lab: str) -> None:
    with pytest.raises(InvalidInputError, match=r"model\.encoder"):
        names(lab, "model.encodr = gru")
    with pytest.raises(InvalidInputError, match="test/wer"):
        names(lab, "test/wr.min < 0.1")
    with pytest.raises(InvalidInputError, match=r"did you mean .*model\.encoder"):
        names(lab, "encoder in (conv, gru)")
    with pytest.raises(InvalidInputError, match="test/wer"):
        names(lab, sort="tset/wer")
    with pytest.raises(InvalidInputError, match="vocoder"):  # another project's key
        names(lab, "vocodr = hifigan", project="tts")
    with pytest.raises(InvalidInputError, match="compares numbers"):
        names(lab, "model.encoder < gru")
    with pytest.raises(InvalidInputError, match="takes numbers"):
        names(lab, "test/wer.min < low")
    with pytest.raises(InvalidInputError, match="unknown status"):
        names(lab, "status = sleeping")


def test_groups_filter_in_sql_and_keep_typed_values(lab: str) -> None:
    result = group_runs(shared_store(lab), RunQuery.from_options(
        project="asr", where="tags has sweep").filter, ["model.encoder", "mfcc"],
        "test/wer.min")
    assert [(g.values["model.encoder"], g.values["mfcc"], g.n) for g in result.groups] == [
        ("gru", False, 2), ("conv", True, 2)]
    gru = result.groups[0]
    assert gru.mean == pytest.approx(0.085)
    assert [m.seed for m in gru.members] == [0, 1]
    with pytest.raises(InvalidInputError, match=r"model\.encoder"):
        group_runs(shared_store(lab), RunFilter(project="asr"), ["model.encodr"])


@pytest.mark.parametrize("text", [
    "test/wer.min < 0.1", "encoder in (conv, gru)", "lr >= 1e-3", "tags has mfcc",
    "status != crashed", "name ~ 'a b'", "gru", 'note = "x \\" y"', "a not in (1, 'x y')",
    "tags not has sweep"])
def test_conditions_read_back_as_they_print(text: str) -> None:
    conditions = parse_where(text)
    assert len(conditions) == 1
    assert parse_where(str(conditions[0])) == conditions
    query = RunQuery.from_options(where=text)
    assert RunQuery.from_params(query.params()) == query


def test_the_grammar() -> None:
    assert parse_where("test/wer.min < 0.1 and encoder in (conv, gru)") == [
        Condition("test/wer.min", "<", ("0.1",)),
        Condition("encoder", "in", ("conv", "gru"))]
    assert parse_where("model.encoder=gru") == [Condition("model.encoder", "=", ("gru",))]
    assert parse_where("note == first try") == [Condition("note", "=", ("first try",))]
    assert parse_where("TAGS NOT HAS x") == [Condition("tags", "not has", ("x",))]
    for bad, why in [("encoder =", "value is missing"), ("a = 1 and", "empty clause"),
                     ("encoder gru", "expected an operator"), ("x in conv", "parentheses"),
                     ("lr has x", "tests tags"), ("tags = x", "tags has"),
                     ("a = (", "one value")]:
        with pytest.raises(InvalidInputError, match=why):
            parse_where(bad)


def test_scope_keys_follow_new_runs_running_runs_ended_runs_and_deletes(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys a scope offers are kept between requests and brought up to date from the
    runs created since and the runs running now or at the last request, not read from every
    run again: a new key of a run already seen, a running run's config update, what a run
    logged just before it ended, and a deleted run's keys all show in the next answer."""
    for name in ("TYMPAN_CAPTURE_ENV", "TYMPAN_SYSTEM_METRICS", "TYMPAN_CONSOLE"):
        monkeypatch.setenv(name, "0")
    where = store_url
    first = tympan.init(project="p", name="first", config={"a": 1}, store=where)
    first.log({"m1": 1.0}, step=0)
    first.finish()
    store = shared_store(where)

    def keys() -> tuple[list[str], list[str]]:
        page = query_runs(store, RunQuery.from_options(project="p", limit=1))
        return page.config_keys, page.metric_keys

    assert keys() == (["a"], ["m1"])
    running = tympan.init(project="p", name="second", config={"b": {"c": 2}}, store=where)
    running.log({"m2": 1.0}, step=0)
    running.flush()
    assert keys() == (["a", "b.c"], ["m1", "m2"])
    running.log({"m3": 1.0}, step=1)  # a new key from a run already seen
    running.flush()
    assert keys()[1] == ["m1", "m2", "m3"]
    assert names(where, "m3 >= 1", project="p") == ["second"]
    running.update_config({"late": {"key": 3}})  # a running run's config changes
    running.flush()
    assert keys()[0] == ["a", "b.c", "late.key"]
    running.log({"m4": 1.0}, step=2)  # logged, then the run ends before the next request
    running.finish()
    assert keys() == (["a", "b.c", "late.key"], ["m1", "m2", "m3", "m4"])
    assert keys() == (["a", "b.c", "late.key"], ["m1", "m2", "m3", "m4"])  # and stays
    delete_runs(store, [running.id], actor="test")
    assert keys() == (["a"], ["m1"])
    close_stores()


def test_groups_list_some_members_and_count_them_all(lab: str) -> None:
    result = group_runs(shared_store(lab), RunFilter(project="asr"), ["model.encoder"],
                        "test/wer.min", members=1)
    gru = next(g for g in result.groups if g.values["model.encoder"] == "gru")
    assert gru.size == 2 and len(gru.members) == 1 and gru.n == 2  # stats use all
