"""Groups of runs at scale (issue 17, item 7), checked for what they answer, not how fast:
the database computes each group's counts, mean and squared deviations and lists its first
members, which must equal the per-run computation it replaced, on SQLite and PostgreSQL.
(The kept config and metric keys are tested in test_query.py.)"""

from __future__ import annotations

import math
import time

import pytest
from sqlalchemy import text

import tympan
from tympan.config import flatten
from tympan.records.groups import GroupMember, group_runs, mean_interval
from tympan.records.query import RunFilter, RunQuery
from tympan.records.table import query_runs
from tympan.store import open_store, projects, run_groups, runs, summaries
from tympan.store.summaries import Summary
from tympan.track.stores import close_stores, shared_store

ENCODERS = ("gru", "conv", "lstm")


def _fill(where: str) -> list[str]:
    """72 runs of project "sweep" whose groups hold what the old computation had to get
    right: NaN, infinite and missing values, a missing key, 1 and 1.0 and true as distinct
    values, seeds recorded, from the config only, or none (3.0 is no seed), and a run of
    another project. Returns the ids of the sweep's runs."""
    now = time.time()
    rows, values, ids = [], {}, []
    for i in range(72):
        config: dict = {"model": {"encoder": ENCODERS[i % 3]}, "lr": (1, 1.0, True)[i % 4 % 3]}
        if i % 11 == 0:
            del config["model"]  # lacks the key: a group of its own (None)
        if i % 5 == 1:
            config["seed"] = i % 4  # seed from the config only
        elif i % 5 == 2:
            config["seed"] = 3.0  # not a whole number: no seed
        run_id = f"r{i:03d}x"
        ids.append(run_id)
        rows.append(dict(id=run_id, name=f"run-{i}", status="finished", created_at=now + i,
                         started_at=now + (i * 7) % 72, ended_at=now + 100, heartbeat_at=None,
                         config=config, tags=[], note="", parent_id=None, study_id=None,
                         host="h", pid=1, seed=i % 3 if i % 5 == 0 else None, env_id=None,
                         error=None))
        wer = 0.2 + 0.01 * ((i * 37) % 17)
        if i % 13 == 4:
            continue  # no summary at all
        minimum = math.nan if i % 9 == 3 else (math.inf if i % 17 == 5 else wer)
        values[run_id] = {"test/wer": Summary(wer, 9, minimum, 3, wer + 0.1, 1, 10)}
    with open_store(where, create=True) as store, store.write() as conn:
        sweep = projects.ensure(conn, "sweep", now)
        other = projects.ensure(conn, "other", now)
        runs.insert_many(conn, [r | {"project_id": sweep} for r in rows])
        runs.insert_many(conn, [rows[0] | {"id": "elsewhere", "project_id": other}])
        summaries.upsert_many(conn, values | {"elsewhere": values[ids[0]]}, now)
    return ids


def _expected(where: str, ids: list[str], by: list[str], summary: str) -> dict:
    """The groups as the per-run computation made them: every run's config and summary read
    in Python, grouped by the values as Python compares them (type included)."""
    groups: dict[tuple, dict] = {}
    records = tympan.find_runs(project="sweep", store=where)
    assert sorted(r.id for r in records) == sorted(ids)
    for record in records:
        flat = flatten(record.config)
        values = tuple(flat.get(k) for k in by)
        ident = tuple((type(v).__name__, v) for v in values)
        seed = record.seed if record.seed is not None else flat.get("seed")
        seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
        found = record.summary.get("test/wer")
        value = getattr(found, summary) if found is not None else None
        value = value if value is not None and math.isfinite(value) else None
        group = groups.setdefault(ident, {"values": dict(zip(by, values, strict=True)),
                                          "members": []})
        group["members"].append(((seed is None, seed or 0, record.started_at, record.id),
                                 GroupMember(record.id, record.name, seed, record.status,
                                             value)))
    for group in groups.values():
        group["members"] = [m for _, m in sorted(group["members"], key=lambda o: o[0])]
        group["stats"] = mean_interval([m.value for m in group["members"]])
    return groups


def _close(got: tuple, want: tuple) -> bool:
    """Equal up to rounding (the database sums in another order); None only where None."""
    return all((g is None) == (w is None) and (w is None or g == pytest.approx(w, rel=1e-9))
               for g, w in zip(got, want, strict=True))


@pytest.mark.parametrize("split", [False, True], ids=["whole", "in-stretches"])
@pytest.mark.parametrize("summary", ["min", "last"])
def test_groups_computed_in_sql_equal_the_per_run_computation(store_url: str, summary: str,
                                                             split: bool, monkeypatch) -> None:
    """``in-stretches``: SQLite counts the runs in 3 stretches of creation time on parallel
    connections
    and lists members alongside from a guessed prefix (at 100,000 runs; here forced at 72, the
    guess made short), which must change nothing."""
    if split:
        monkeypatch.setattr(run_groups, "RUNS_PER_PART", 20)
        monkeypatch.setattr(run_groups, "WORKERS", 3)
        monkeypatch.setattr(run_groups, "GUESSED_GROUPS", 1)
        spy = _StretchSpy(monkeypatch)
    ids = _fill(store_url)
    store = shared_store(store_url)
    by = ["model.encoder", "lr"]
    expected = _expected(store_url, ids, by, summary)
    for members in (None, 2, 1, 0):  # 1: the first prefix falls short for some group
        result = group_runs(store, RunFilter(project="sweep"), by, f"test/wer.{summary}",
                            members=members)
        assert result.total == len(ids)
        got = {tuple((type(v).__name__, v) for v in g.values.values()): g
               for g in result.groups}
        assert got.keys() == expected.keys()
        for ident, want in expected.items():
            group = got[ident]
            assert group.values == want["values"]
            assert group.size == len(want["members"])
            assert group.members == want["members"][:members]
            n, mean, std, low, high = want["stats"]
            assert group.n == n
            assert _close((group.mean, group.std, group.low, group.high),
                          (mean, std, low, high))
        means = [g.mean for g in result.groups if g.mean is not None]
        assert means == sorted(means)
    if split and "://" not in store_url:  # SQLite: 72 runs, created one a second
        created = sorted(r.created_at for r in tympan.find_runs(project="sweep",
                                                                 store=store_url))
        edges = [(None, created[24]), (created[24], created[48]), (created[48], None)]
        assert spy.stretches == [edges] * 4  # once per `members`
    close_stores()


class _StretchSpy:
    """Records the stretches (of created_at) each group-by was read in."""

    def __init__(self, monkeypatch) -> None:
        self.stretches: list[list[tuple[int, int]]] = []
        real = run_groups._stretches

        def spy(*args, **kwargs):
            found = real(*args, **kwargs)
            self.stretches.append(found)
            return found

        monkeypatch.setattr(run_groups, "_stretches", spy)


def test_groups_without_a_metric_and_under_a_filter(store_url: str) -> None:
    ids = _fill(store_url)
    store = shared_store(store_url)
    result = group_runs(store, RunQuery.from_options(
        project="sweep", where="model.encoder in (gru, conv)").filter, ["model.encoder"])
    expected = _expected(store_url, ids, ["model.encoder"], "min")
    assert [(g.values["model.encoder"], g.size, g.n, g.mean) for g in result.groups] == [
        (encoder, len(expected[(("str", encoder),)]["members"]), 0, None)
        for encoder in ("conv", "gru")]
    assert result.groups[1].members == [  # no metric: no values
        GroupMember(m.id, m.name, m.seed, m.status, None)
        for m in expected[(("str", "gru"),)]["members"]]
    close_stores()


def test_groups_pool_values_spelled_apart_in_json(tmp_path) -> None:
    """The database groups by JSON text; 1e-3 and 0.001 are one value to Python, and one
    group, with the counts and the interval of all its runs."""
    where = str(tmp_path / "store")
    ids = _fill(where)
    with open_store(where) as store, store.write() as conn:
        conn.execute(text("UPDATE runs SET config = :c WHERE id IN (:a, :b)"),
                     {"c": '{"lr": 1e-3}', "a": ids[0], "b": ids[1]})
        conn.execute(text("UPDATE runs SET config = :c WHERE id IN (:a, :b)"),
                     {"c": '{"lr": 0.001}', "a": ids[2], "b": ids[3]})
    expected = _expected(where, ids, ["lr"], "last")
    result = group_runs(shared_store(where), RunFilter(project="sweep"), ["lr"],
                        "test/wer.last")
    pooled = next(g for g in result.groups if g.values == {"lr": 0.001})
    want = expected[(("float", 0.001),)]
    assert pooled.size == 4 and pooled.members == want["members"]
    assert pooled.n == want["stats"][0]
    assert _close((pooled.mean, pooled.std, pooled.low, pooled.high), want["stats"][1:])
    close_stores()


@pytest.mark.parametrize("where", [None, "model.encoder = gru", "test/wer.max > 0.35"])
def test_metric_sorts_page_through_valued_then_missing_runs(store_url: str,
                                                            where: str | None) -> None:
    """A metric sort walks the summary index for the runs with a value, then lists the runs
    without one (missing or NaN) by id: every page, both directions, equals the order the
    per-run computation gives."""
    ids = _fill(store_url)
    store = shared_store(store_url)
    records = {r.id: r for r in tympan.find_runs(project="sweep", where=where, store=store_url)}
    assert set(records) <= set(ids) and len(records) > 14
    for summary, descending in (("min", False), ("min", True), ("last", True)):
        def value(run_id: str, summary: str = summary) -> float | None:
            found = records[run_id].summary.get("test/wer")
            got = getattr(found, summary) if found is not None else None
            return None if got is None or math.isnan(got) else got

        valued = sorted((i for i in records if value(i) is not None), key=lambda i: i)
        valued.sort(key=lambda i: value(i), reverse=descending)  # ties stay by id
        expected = valued + sorted(i for i in records if value(i) is None)
        pages = []
        for offset in range(0, len(expected) + 7, 7):
            page = query_runs(store, RunQuery.from_options(
                project="sweep", where=where, sort=f"test/wer.{summary}",
                descending=descending, limit=7, offset=offset))
            assert page.total == len(expected)
            pages += [r.id for r in page.runs]
        assert pages == expected
        every = query_runs(store, RunQuery.from_options(
            project="sweep", where=where, sort=f"test/wer.{summary}", descending=descending))
        assert [r.id for r in every.runs] == expected
    close_stores()


def test_config_reads_follow_updates_and_a_0009_store_upgraded(store_url: str) -> None:
    """PostgreSQL filters, sorts and groups on a JSONB copy of each run's config (revision
    0010, a generated column): it follows config updates, and an upgraded store computes it
    for the runs already there. SQLite reads the JSON text itself; both answer alike."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    from tympan.store import upgrade_store, versioning

    made = {}
    for name, encoder in (("a", "gru"), ("b", "conv")):
        run = tympan.init(project="p", name=name, store=store_url,
                          config={"model": {"encoder": encoder}, "seed": 1})
        made[name] = run
    made["a"].update_config({"model": {"encoder": "lstm", "depth": 4}})
    for run in made.values():
        run.finish()

    def answers() -> tuple:
        store = shared_store(store_url)
        picked = query_runs(store, RunQuery.from_options(project="p", where="model.depth >= 4"))
        ordered = query_runs(store, RunQuery.from_options(project="p", sort="model.encoder"))
        grouped = group_runs(store, RunFilter(project="p"), ["model.encoder", "model.depth"])
        return ([r.name for r in picked.runs], [r.name for r in ordered.runs],
                [(tuple(g.values.values()), [m.seed for m in g.members])
                 for g in grouped.groups])

    after_update = (["a"], ["b", "a"], [(("conv", None), [1]), (("lstm", 4), [1])])
    assert answers() == after_update
    close_stores()
    store = open_store(store_url)
    with store.engine.begin() as conn:  # back to the schema before the JSONB copy
        config = Config()
        config.set_main_option("script_location", str(versioning.MIGRATIONS))
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")
        assert "config_jsonb" not in {c["name"] for c in inspect(conn).get_columns("runs")}
    store.close()
    assert upgrade_store(store_url)[:2] == ("0009", versioning.HEAD)
    assert answers() == after_update
    close_stores()


def test_running_runs_are_read_through_the_status_index(tmp_path) -> None:
    """Every read request asks which runs of the project are running (liveness, kept keys).
    Walking the project's index read all its runs (25 ms at 100,000); the few running ones
    come from the status index."""
    from tympan.store import run_table

    where = str(tmp_path / "store")
    _fill(where)
    with open_store(where) as store, store.read() as conn:
        captured: list[tuple[str, object]] = []
        from sqlalchemy import event

        def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:
            captured.append((statement, parameters))

        event.listen(conn, "before_cursor_execute", keep)
        assert run_table.running_ids(conn, [1]) == []
        assert run_table.running_rows(conn, [1]) == []
        event.remove(conn, "before_cursor_execute", keep)
        selects = [(s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 2
        for statement, parameters in selects:
            plan = " ".join(str(row[3]) for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
            assert "ix_runs_status" in plan, plan
    close_stores()


def test_a_group_by_reads_through_the_indexes_of_revision_0012(tmp_path, monkeypatch) -> None:
    """SQLite: the stretches scanned through (project_id, created_at), each run's summary
    sought in scan order through (key, run_created, run_id, ...), and the members' prefix
    taken from the member-order index, whose expression must read as run_groups writes the
    seed."""
    from sqlalchemy import Engine, event

    monkeypatch.setattr(run_groups, "RUNS_PER_PART", 20)
    monkeypatch.setattr(run_groups, "WORKERS", 3)
    where = str(tmp_path / "store")
    _fill(where)
    captured: list[tuple[str, object]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", keep)
    try:
        group_runs(shared_store(where), RunFilter(project="sweep"), ["model.encoder"],
                   "test/wer.min", members=2)
    finally:
        event.remove(Engine, "before_cursor_execute", keep)
    with open_store(where) as store, store.read() as conn:
        plans = {statement: " ".join(str(row[3]) for row in conn.exec_driver_sql(
            "EXPLAIN QUERY PLAN " + statement, parameters))
            for statement, parameters in captured}
    counts = [p for s, p in plans.items() if "GROUP BY" in s and "sum(" in s]
    assert len(counts) == 3, counts  # first, middle and last stretch
    assert all("ix_run_summaries_created (key=? AND run_created=? AND run_id=?)" in p
               and "ix_runs_project (project_id=? AND created_at" in p for p in counts), counts
    ranked = [p for s, p in plans.items() if "row_number()" in s]
    assert ranked and all("ix_runs_member_order" in p and "USE TEMP B-TREE FOR ORDER BY"
                          not in p.split("SCAN")[0] for p in ranked), ranked
    close_stores()


def test_runs_created_at_one_moment_each_find_their_own_summary(store_url: str) -> None:
    """A summary carries its run's created_at (written with it, backfilled by revision
    0012); runs created at the same moment (an import) are told apart by id."""
    ids = _fill(store_url)
    with open_store(store_url) as store, store.write() as conn:
        created = dict(conn.execute(text("SELECT id, created_at FROM runs")).all())
        copied = dict(conn.execute(text("SELECT run_id, run_created FROM run_summaries")).all())
        assert copied == {run_id: created[run_id] for run_id in copied}
        conn.execute(text("UPDATE runs SET created_at = 1000.0"))
        conn.execute(text("UPDATE run_summaries SET run_created = 1000.0"))
    expected = _expected(store_url, ids, ["model.encoder"], "min")
    result = group_runs(shared_store(store_url), RunFilter(project="sweep"),
                        ["model.encoder"], "test/wer.min")
    got = {tuple((type(v).__name__, v) for v in g.values.values()): g for g in result.groups}
    assert got.keys() == expected.keys()
    for ident, want in expected.items():
        assert got[ident].members == want["members"]
        assert _close((got[ident].n, got[ident].mean), want["stats"][:2])
    close_stores()
