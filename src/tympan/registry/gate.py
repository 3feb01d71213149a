"""Gate reports: the evidence that lets an automated step move a protected alias.

A gate (the continuous-training loop's comparison of a challenger with the champion) records
its verdict as the artifact ``gate/report.json`` of its run::

    run.log_artifact(gate_report(model="asr-digits", challenger=4, champion=3, passed=True,
                                 checks=[{"name": "test/wer", "passed": True, ...}]),
                     name=GATE_REPORT)
    tympan.models.set_alias("asr-digits@champion", 4, reason="gate passed",
                            evidence=f"gate:{run.id}")

The registry reads the report back from the store and moves the alias only if it passed and
names this model and this version: a client cannot claim a gate it does not have.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from tympan.errors import ProtectedAliasError

GATE_REPORT = "gate/report.json"


def gate_report(*, model: str, challenger: int, passed: bool, champion: int | None = None,
                checks: Sequence[dict[str, Any]] = (), summary: str = "") -> bytes:
    """The JSON bytes to log as ``gate/report.json``."""
    return json.dumps({"model": model, "challenger": int(challenger),
                       "champion": champion, "passed": bool(passed), "checks": list(checks),
                       "summary": summary}, allow_nan=False).encode()


def check_gate(report: Any, run_id: str, model: str, version: int) -> dict[str, Any]:
    """The report if it passed for ``model`` version ``version``; else ProtectedAliasError."""
    if not isinstance(report, dict):
        raise ProtectedAliasError(f"run {run_id}'s {GATE_REPORT} is not a gate report")
    if report.get("model") != model or report.get("challenger") != version:
        raise ProtectedAliasError(
            f"run {run_id}'s gate judged {report.get('model')!r} version "
            f"{report.get('challenger')!r}, not {model!r} version {version}")
    if report.get("passed") is not True:
        raise ProtectedAliasError(f"run {run_id}'s gate did not pass: a protected alias moves "
                                  "only on a gate that passed")
    return report
