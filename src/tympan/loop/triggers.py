"""What makes ``tympan loop watch`` look at the data: new data, a drift alarm, a schedule.

A trigger says *when* an iteration runs; the iteration still trains on the data folder's
new manifests. ``new_data`` runs one as soon as a batch has settled; without it new batches
wait for a drift alarm of a serving run of the model (``drift_alarm``) or the next tick of
``schedule`` and are then trained on together. A trigger that fires with nothing new to
train on is reported and spent (a drift alarm asks for labelled data, not for a retraining
on the same data).

Schedules are ``every N`` with a unit (``every 6h``, ``every 30m``, ``every 1d``) counted
from the pipeline's last iteration (or the watch's start), or a cron line of five fields
(minute hour day month weekday, in UTC: ``0 */6 * * *``).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from typing import Any

from tympan.loop.label import SERVING_TAG
from tympan.loop.spec import Pipeline

_EVERY = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# (name, lowest, highest) of the five cron fields; weekday 0 (or 7) is Sunday.
_CRON = [("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
         ("weekday", 0, 7)]
SCHEDULE_HELP = ("use 'every N' with a unit s, m, h or d (every 6h) or a cron line of five "
                 "fields, minute hour day month weekday (0 */6 * * *)")


class Schedule:
    """When a scheduled iteration is due: ``next_after(t)`` in seconds since the epoch."""

    def __init__(self, text: str) -> None:
        self.text = text.strip()
        every = _EVERY.match(self.text)
        self.period = float(every[1]) * _UNIT[every[2]] if every else None
        if self.period is not None and self.period <= 0:
            raise ValueError(f"schedule {text!r}: the period must be more than 0")
        self.fields = None if every else _cron(self.text)

    def next_after(self, t: float) -> float:
        if self.period is not None:
            return t + self.period
        return _next_cron(self.fields, t)


def _cron(text: str) -> list[set[int]]:
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(f"{text!r} is not a schedule: {SCHEDULE_HELP}")
    fields = []
    for part, (name, low, high) in zip(parts, _CRON, strict=True):
        values: set[int] = set()
        for item in part.split(","):
            m = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", item)
            if not m:
                raise ValueError(f"schedule {text!r}: {name} {item!r}: {SCHEDULE_HELP}")
            first, last = (low, high) if m[1] == "*" else (int(m[2]), int(m[3] or m[2]))
            step = int(m[4] or 1)
            if m[4] and m[3] is None and m[1] != "*":
                last = high  # "5/15": from 5 on, every 15
            if not low <= first <= last <= high or step < 1:
                raise ValueError(f"schedule {text!r}: {name} {item!r} is outside "
                                 f"{low}-{high}")
            values.update(range(first, last + 1, step))
        fields.append(values)
    if 7 in fields[4]:
        fields[4] = (fields[4] - {7}) | {0}
    return fields


def _next_cron(fields: list[set[int]] | None, t: float) -> float:
    """The first whole minute after ``t`` (UTC) that the cron fields match."""
    assert fields is not None
    minutes, hours, days, months, weekdays = fields
    at = (int(t) // 60 + 1) * 60
    horizon = at + 5 * 366 * 86400  # e.g. "0 0 29 2 1" can be years away
    while at < horizon:
        tm = time.gmtime(at)
        weekday = (tm.tm_wday + 1) % 7  # gmtime: Monday is 0; cron: Sunday is 0
        if tm.tm_mon not in months or tm.tm_mday not in days or weekday not in weekdays:
            at = calendar.timegm((tm.tm_year, tm.tm_mon, tm.tm_mday, 0, 0, 0)) + 86400
        elif tm.tm_hour not in hours:
            at = calendar.timegm((tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, 0, 0)) + 3600
        elif tm.tm_min not in minutes:
            at += 60
        else:
            return float(at)
    raise ValueError("the cron line never matches a date (e.g. day 31 of a 30-day month)")


@dataclass(frozen=True)
class DriftAlarm:
    run: str  # the serving run that recorded it
    step: int  # its request number
    at: float  # when it was recorded (seconds since the epoch)

    def __str__(self) -> str:
        return f"drift alarm of serving run {self.run} at request {self.step}"


def drift_alarms(pipeline: Pipeline, store: str | None, since: float) -> list[DriftAlarm]:
    """Drift alarms recorded after ``since`` by serving runs of the pipeline's model (any
    version), oldest first."""
    import tympan
    import tympan.models as models
    name = pipeline.model_name
    champion = models.get(f"{name}@champion", store=store)
    alarms = []
    for run in tympan.find_runs(store, project=champion.project, tags=[SERVING_TAG]):
        uri = str(((run.config or {}).get("serving") or {}).get("uri") or "")
        if not uri.startswith(f"models:/{name}/") or "drift/alarm" not in run.summary:
            continue
        series = run.history("drift/alarm")
        alarms += [DriftAlarm(run.id, int(s), float(t))
                   for s, v, t in zip(series.steps, series.values, series.times, strict=True)
                   if v >= 1 and t > since]
    return sorted(alarms, key=lambda a: a.at)


class Triggers:
    """The pipeline's triggers as a watch sees them; ``due(now)`` names the drift alarm or
    schedule tick that asks for an iteration (None: nothing does), ``spent(now)`` marks it
    handled."""

    def __init__(self, pipeline: Pipeline, store: str | None, started: float,
                 last_iteration: float | None) -> None:
        self.pipeline, self.store = pipeline, store
        self.on_new_data = "new_data" in pipeline.spec.trigger_names()
        self.on_drift = "drift_alarm" in pipeline.spec.trigger_names()
        self.schedule = pipeline.spec.schedule()
        # Alarms and ticks before the last iteration were answered by it.
        self.since = last_iteration if last_iteration is not None else started
        self.next_tick = self.schedule.next_after(self.since) if self.schedule else None

    def due(self, now: float) -> str | None:
        if self.next_tick is not None and now >= self.next_tick:
            return f"schedule {self.schedule.text!r}"
        if self.on_drift:
            alarms = drift_alarms(self.pipeline, self.store, self.since)
            if alarms:
                return str(alarms[-1])
        return None

    def spent(self, now: float) -> None:
        self.since = now
        if self.schedule is not None:
            self.next_tick = self.schedule.next_after(now)


def last_iteration_at(gate_runs: list[Any]) -> float | None:
    return max((r.started_at for r in gate_runs), default=None)
