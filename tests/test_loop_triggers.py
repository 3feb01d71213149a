"""What makes `tympan loop watch` run an iteration besides new data: a drift alarm recorded
by a serving run of the model, and a schedule (docs/loop.md, "Triggers"). The clock and the
sleeps are injected, so nothing here waits for real."""

from __future__ import annotations

import calendar
import json
import time
from pathlib import Path

import pytest
from tests.registry_fixtures import REPO, asr_run, tiny_corpus

import tympan
import tympan.models as models
from tympan.errors import InvalidInputError
from tympan.loop.iteration import gate_runs
from tympan.loop.spec import load_pipeline
from tympan.loop.triggers import Schedule, drift_alarms
from tympan.loop.watch import watch
from tympan.serve.drift import WindowResult
from tympan.serve.recording import ServingRun

pytestmark = pytest.mark.slow  # minutes of trainings, servers or Ray: run first (conftest)

PIPELINE = """\
name: digits
model: models:/asr-digits
data: data
gold: gold.jsonl
recipe: {recipe}
seeds: 2
triggers: {triggers}
"""


def _at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    return float(calendar.timegm((y, mo, d, h, mi, 0)))


def test_schedules_every_period_and_cron_lines() -> None:
    t = _at(2026, 3, 2, 7, 13)  # a Monday
    assert Schedule("every 6h").next_after(t) == t + 6 * 3600
    assert Schedule("every 30m").next_after(t) == t + 1800
    assert Schedule("every 1d").next_after(t) == t + 86400
    assert Schedule("0 */6 * * *").next_after(t) == _at(2026, 3, 2, 12)
    assert Schedule("15,45 9-17 * * 1-5").next_after(t) == _at(2026, 3, 2, 9, 15)
    assert Schedule("0 3 * * 0").next_after(t) == _at(2026, 3, 8, 3)  # next Sunday
    assert Schedule("0 3 * * 7").next_after(t) == _at(2026, 3, 8, 3)  # 7 is Sunday too
    assert Schedule("30 0 1 */3 *").next_after(t) == _at(2026, 4, 1, 0, 30)
    assert Schedule("*/20 * * * *").next_after(_at(2026, 3, 2, 7, 40)) == _at(2026, 3, 2, 8)


def _pipeline(tmp_path: Path, triggers: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "loop.yaml"
    path.write_text(PIPELINE.format(recipe=REPO / "recipes/asr_ctc", triggers=triggers))
    return path


@pytest.mark.parametrize(("triggers", "message"), [
    ("[{schedule: every 6 hours}]", r"triggers: 'every 6 hours' is not a schedule: use "
                                    r"'every N' with a unit s, m, h or d"),
    ("[{schedule: 0 25 * * *}]", r"schedule '0 25 \* \* \*': hour '25' is outside 0-23"),
    ("[{schedule: every 0h}]", "the period must be more than 0"),
    ("[new_data, drift]", r"unknown trigger 'drift' \(valid: new_data, drift_alarm, "
                          r"\{schedule: every 6h\}\)"),
    ("[{cron: 0 * * * *}]", "unknown trigger"),
    ("[]", "name at least one trigger"),
])
def test_bad_triggers_are_refused_naming_what_is_valid(tmp_path: Path, triggers: str,
                                                       message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        load_pipeline(_pipeline(tmp_path, triggers))


@pytest.fixture
def champion(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    store = str(tmp_path / "store.db")
    run = asr_run(store, tiny_corpus(tmp_path_factory), extra_train=None)
    models.register(run.id, "asr-digits", recipe=str(REPO / "recipes/asr_ctc"), store=store)
    models.set_alias("asr-digits@champion", 1, admin=True, reason="start", store=store)
    return store


class Clock:
    """Seconds since the epoch that move only when the watch sleeps."""

    def __init__(self, start: float) -> None:
        self.now, self.naps = start, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def test_a_schedule_tick_asks_for_an_iteration_and_is_spent(tmp_path: Path,
                                                            champion: str) -> None:
    pipeline = load_pipeline(_pipeline(tmp_path, "[{schedule: every 6h}]"))
    clock = Clock(_at(2026, 3, 2, 7))
    lines: list[str] = []
    done = watch(pipeline, store=champion, interval=600, max_iterations=2, say=lines.append,
                 sleep=clock.sleep, clock=clock)
    assert [(i.status, i.trigger) for i in done] == [("idle", "schedule 'every 6h'")] * 2
    # Ticks 6 h after the watch started, then 6 h after that: 36 naps of 10 minutes each.
    assert clock.now == _at(2026, 3, 2, 19) and len(clock.naps) == 72
    assert lines == ["schedule 'every 6h': no new data to train on"] * 2


def test_new_data_waits_for_the_schedule_when_new_data_is_no_trigger(tmp_path: Path,
                                                                     champion: str) -> None:
    pipeline = load_pipeline(_pipeline(tmp_path, "[{schedule: 0 */6 * * *}]"))
    (tmp_path / "data" / "batch1.jsonl").write_text(json.dumps({"path": "a.wav",
                                                                "text": "one"}) + "\n")
    clock = Clock(_at(2026, 3, 2, 7))

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= _at(2026, 3, 2, 11, 59):
            raise KeyboardInterrupt  # just before the tick: stop watching

    with pytest.raises(KeyboardInterrupt):
        watch(pipeline, store=champion, interval=60, debounce=5, sleep=sleep, clock=clock)
    assert gate_runs(pipeline, champion) == []  # five hours of settled data, no iteration
    assert not [r for r in tympan.find_runs(champion, project="asr-ctc")
                if r.config.get("extra_train")]


def _serve(store: str, alarms: list[bool]) -> str:
    """A serving run of the champion that closed one drift window per entry of ``alarms``."""
    version = models.get("asr-digits@champion", store=store)
    serving = ServingRun(version, {"model": "asr-digits", "uri": version.uri}, store=store,
                         sample_rate=0.0)
    for i, alarm in enumerate(alarms):
        serving.drift(WindowResult(index=i, requests=100, low=40 if alarm else 9,
                                   p_value=1e-9 if alarm else 0.6, alarm=alarm, level=0.01,
                                   windows=i + 1, discoveries=int(alarm)))
    serving.finish()
    return serving.id


def test_a_drift_alarm_of_a_serving_run_asks_for_an_iteration(tmp_path: Path,
                                                              champion: str) -> None:
    pipeline = load_pipeline(_pipeline(tmp_path, "[drift_alarm]"))
    quiet = _serve(champion, [False, False])  # windows without an alarm trigger nothing
    assert drift_alarms(pipeline, champion, since=0.0) == []
    clock = Clock(time.time())
    served: list[str] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.naps) == 3:  # the alarm comes while the loop watches
            served.append(_serve(champion, [False, True]))
        assert len(clock.naps) < 10, "the alarm never triggered an iteration"

    lines: list[str] = []
    done = watch(pipeline, store=champion, interval=30, max_iterations=1, say=lines.append,
                 sleep=sleep, clock=clock)
    assert len(clock.naps) == 3  # nothing fired before the alarm
    assert served and served[0] != quiet
    assert [i.status for i in done] == ["idle"]
    assert done[0].trigger == f"drift alarm of serving run {served[0]} at request 0"
    assert lines == [f"{done[0].trigger}: no new data to train on"]
    # Alarms are read from the store after a time: one recorded, none after it.
    alarm = drift_alarms(pipeline, champion, since=0.0)
    assert [(a.run, a.step) for a in alarm] == [(served[0], 0)]
    assert drift_alarms(pipeline, champion, since=alarm[0].at) == []
