"""One iteration of the loop: new data -> N seeds of the challenger -> gold evaluation of
champion and challenger on the same utterances -> gate -> register and move @champion.

Every step leaves a record in the store, so a loop killed anywhere resumes where it stopped:

- a **training** is a run of the recipe's project whose config holds the batch's manifests
  and the seed; a finished one is reused, never trained again;
- the **gate** is a run of the pipeline's project (``loop-NAME``) tagged with the
  iteration's key (a hash of the champion version and the new manifests); it holds the gold
  evaluation of every model, the paired statistics and ``gate/report.json``;
- **promotion** registers the challenger's first seed (reused if a version of that run
  exists) and moves ``@champion`` with ``gate:RUN`` as evidence, only when the alias does
  not already name it: an iteration never promotes twice.

A manifest is judged once: a batch whose challenger failed the gate is recorded as judged
(the gate run's config lists it) and not offered again; the next batch is tried on top of
the champion's data alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tympan import settings
from tympan.config import config_text
from tympan.errors import InvalidInputError, LoopError
from tympan.loop.spec import Pipeline

KEY_TAG = "loop-iteration"


@dataclass
class Iteration:
    """What an iteration did; ``status`` is ``idle`` (no new data), ``promoted`` or
    ``rejected``."""

    status: str
    key: str | None = None
    new_manifests: list[str] = field(default_factory=list)
    gate_run: str | None = None
    champion: int | None = None
    challenger: int | None = None
    report: dict[str, Any] | None = None
    trigger: str | None = None  # what asked for it: new data, a drift alarm, the schedule


def manifests_in(folder: Path) -> list[Path]:
    """The data source's manifests: ``*.jsonl`` in the folder and ``*/manifest.jsonl``."""
    if not folder.is_dir():
        raise InvalidInputError(f"data folder {folder} does not exist: create it and put "
                                "corpus manifests (*.jsonl) in it")
    found = list(folder.glob("*.jsonl")) + list(folder.glob("*/manifest.jsonl"))
    return sorted(p.resolve() for p in found)


def gate_runs(pipeline: Pipeline, store: str | None, **query: Any) -> list[Any]:
    """The pipeline's gate runs (none before its first iteration)."""
    import tympan
    from tympan.store import projects
    from tympan.track.stores import shared_store

    with shared_store(store).read() as conn:
        if pipeline.project not in projects.names(conn).values():
            return []
    return tympan.find_runs(store, project=pipeline.project, tags=[KEY_TAG], **query)


def judged_manifests(pipeline: Pipeline, store: str | None) -> set[str]:
    """Manifests an earlier iteration already judged."""
    judged: set[str] = set()
    for run in gate_runs(pipeline, store):
        judged.update((run.config or {}).get("new_manifests") or [])
    return judged


def run_iteration(pipeline: Pipeline, *, store: str | None = None,
                  say: Callable[[str], None] = lambda _line: None,
                  trigger: str = "new data") -> Iteration:
    """One iteration if there is new data; ``Iteration("idle")`` otherwise. ``trigger``
    (what asked for it) is recorded with the gate run."""
    import tympan.models as models

    spec = pipeline.spec
    where = _portable(store)
    champion = models.get(f"{_model_name(spec.model)}@champion", store=where)
    champion_data = _split(champion.config.get(spec.data_key))
    seen = judged_manifests(pipeline, where) | set(champion_data)
    new = [str(p) for p in manifests_in(pipeline.resolve(spec.data)) if str(p) not in seen]
    if not new:
        return Iteration("idle", champion=champion.version, trigger=trigger)
    key = hashlib.sha256(json.dumps([champion.model, champion.version, new]).encode()
                         ).hexdigest()[:16]
    say(f"iteration {key}: {len(new)} new manifest(s) on top of {champion.model} "
        f"version {champion.version}")
    gate = _existing_gate(pipeline, where, key)
    if gate is None:
        runs = _train_all(pipeline, champion, [*champion_data, *new], where, say)
        gate = _judge(pipeline, where, key, champion, runs, new, trigger, say)
    report = json.loads(gate.read_artifact(models.GATE_REPORT))
    result = Iteration("rejected", key, new, gate.id, champion.version, report=report,
                       trigger=trigger)
    if not report.get("passed"):
        say(f"gate {gate.id} did not pass: {report.get('summary')}")
        return result
    version = report["challenger"]
    target = f"{champion.model}@champion"
    current = models.get(target, store=where).version
    if current != version:
        models.set_alias(target, version, reason=f"loop {spec.name}: {report['summary']}",
                         evidence=f"gate:{gate.id}", store=where)
        say(f"{target} moved to version {version}")
    result.status, result.challenger = "promoted", version
    return result


def _has_report(run: Any) -> bool:
    from tympan.registry.gate import GATE_REPORT

    return any(a.path == GATE_REPORT for a in run.artifacts())


def _existing_gate(pipeline: Pipeline, where: str, key: str) -> Any:
    for run in gate_runs(pipeline, where, status="finished"):
        if (run.config or {}).get("key") == key and _has_report(run):
            return run
    return None


def _train_all(pipeline: Pipeline, champion: Any, manifests: list[str], where: str,
               say: Callable[[str], None]) -> list[Any]:
    """The finished run of the recipe with the champion's config, ``manifests`` as data, per
    seed: one trained before (a resumed loop) or a new one, trained through the study
    executors (``executor: local`` or ``ray``), ``workers`` at a time."""
    import tympan
    from tympan.study.executors import TrialJob, make_executor
    from tympan.track.naming import new_run_id

    spec = pipeline.spec
    data = ",".join(manifests)
    project = champion.config.get("project")
    done: dict[int, Any] = {}
    for run in tympan.find_runs(where, project=project, status="finished"):
        config = run.config or {}
        seed = config.get("seed")
        if config.get(spec.data_key) == data and seed in spec.seed_list() and seed not in done:
            say(f"  seed {seed}: reusing finished run {run.id}")
            done[seed] = run
    todo = [seed for seed in spec.seed_list() if seed not in done]
    if not todo:
        return [done[seed] for seed in spec.seed_list()]
    config = {k: v for k, v in champion.config.items() if k != "store"}
    config |= dict(spec.overrides) | {spec.data_key: data}
    champion_run = tympan.load_run(champion.run_id, store=where)
    recipe = _recipe(pipeline, champion_run)
    cwd = ((champion_run.environment() or {}).get("command") or {}).get("cwd")
    cwd = cwd if cwd and Path(cwd).is_dir() else str(pipeline.path.parent)
    pool = make_executor(spec.executor, spec.workers, spec.address)
    run_ids: dict[int, str] = {}
    queue, running = list(todo), set()
    try:
        while queue or running:
            while queue and len(running) < pool.slots:
                seed = queue.pop(0)
                argv = ["{python}", "-m", "tympan", "run", recipe,
                        *(f"{k}={config_text(v)}" for k, v in (config | {"seed": seed}).items())]
                run_ids[seed] = new_run_id()
                env = {"TYMPAN_STORE": where, "TYMPAN_RUN_ID": run_ids[seed],
                       "PYTHONUNBUFFERED": "1"}
                say(f"  seed {seed}: training run {run_ids[seed]} ({spec.executor})")
                pool.start(TrialJob(seed, argv, cwd, env, timeout=None))
                running.add(seed)
            for result in pool.wait(timeout=5.0):
                running.discard(result.trial_id)
                if result.returncode != 0:
                    why = result.error or f"exit {result.returncode}"
                    text = result.output.decode(errors="replace").strip()[-2000:]
                    raise LoopError(f"training seed {result.trial_id} failed ({why}): {text}")
    finally:
        pool.shutdown()
    done |= {seed: tympan.load_run(run_ids[seed], store=where) for seed in todo}
    return [done[seed] for seed in spec.seed_list()]


def _recipe(pipeline: Pipeline, run: Any) -> str:
    """The pipeline's recipe, else the one that trained the champion's run."""
    from tympan.entry import recipe_of

    if pipeline.spec.recipe:
        return str(pipeline.resolve(pipeline.spec.recipe))
    recipe = recipe_of(run)
    if recipe is None:
        raise LoopError(f"cannot tell which recipe trained the champion's run {run.id}: "
                        "set `recipe:` in the pipeline file")
    return recipe


def gold_set(path: Path) -> tuple[list[str], list[Any], list[str]]:
    """(utterance ids, waveforms, reference texts) of the gold manifest."""
    from tympan.audio.io import load

    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"gold set {path}: cannot read it as a manifest: {exc}") \
            from None
    if len(rows) < 2:
        raise InvalidInputError(f"gold set {path}: needs at least 2 utterances")
    waves = [load(path.parent / row["path"], mono=True)[0] for row in rows]
    return [row["path"] for row in rows], waves, [row["text"] for row in rows]


def evaluate(inference: Any, waves: list[Any], texts: list[str], unit: str
             ) -> tuple[list[int], list[int]]:
    """(errors, reference lengths) per gold utterance of a transcribing model."""
    import torch

    from tympan.audio.features import pad_waves
    from tympan.audio.metrics import character_error_rate, word_error_rate

    with torch.inference_mode():
        inputs = inference.preprocess(*pad_waves(waves))
        hyps = inference.postprocess(inference.model(*inputs), inputs)
    measure = character_error_rate if unit == "cer" else word_error_rate
    report = measure(texts, [str(h) for h in hyps], n_boot=100)
    return ([u.errors for u in report.utterances],
            [u.reference_length for u in report.utterances])


def _challenger_model(run: Any, recipe: str) -> Any:
    from tympan.registry.code import import_recipe, snapshot
    from tympan.registry.inference import build

    code, info = snapshot(recipe)
    sha = hashlib.sha256(code).hexdigest()
    return build(import_recipe(info, sha, lambda _sha: code), run.read_artifact("model.pt"),
                 recipe)


def _judge(pipeline: Pipeline, where: str, key: str, champion: Any, runs: list[Any],
           new: list[str], trigger: str, say: Callable[[str], None]) -> Any:
    """The gate run: gold evaluation, paired statistics, health, verdict, and (passed) the
    challenger registered; its ``gate/report.json`` says all of it."""
    import numpy as np

    import tympan
    import tympan.models as models
    from tympan.records.probe import probe_data
    from tympan.study.stats import utterance_effect

    spec, rule = pipeline.spec, pipeline.spec.gate
    ids, waves, texts = gold_set(pipeline.resolve(spec.gold))
    say(f"  evaluating on {len(ids)} gold utterances")
    champ_e, champ_c = evaluate(models.load(f"{champion.model}/{champion.version}",
                                            store=where).inference, waves, texts, rule.metric)
    recipe = _recipe(pipeline, tympan.load_run(champion.run_id, store=where))
    chal = [evaluate(_challenger_model(r, recipe), waves, texts, rule.metric) for r in runs]
    te = np.array([e for e, _ in chal], float)
    tc = np.array([c for _, c in chal], float)
    be, bc = np.tile(champ_e, (len(runs), 1)), np.tile(champ_c, (len(runs), 1))
    effect = utterance_effect(te, tc, be, bc, lower_is_better=True, n_boot=rule.n_boot,
                              confidence=rule.confidence)
    champ_rate = float(be.sum(1)[0] / bc.sum(1)[0])
    chal_rates = (te.sum(1) / tc.sum(1)).tolist()
    bound = 0.0 if rule.rule == "improve" else rule.margin
    metric_ok = effect.high < bound
    events = {r.id: len(probe_data(r).events) for r in runs}
    health_ok = all(n <= rule.max_health_events for n in events.values())
    checks = [
        {"name": f"gold/{rule.metric}", "rule": rule.rule, "passed": bool(metric_ok),
         "champion": champ_rate, "challenger": float(np.mean(chal_rates)),
         "challenger_seeds": chal_rates, "effect": effect.estimate, "low": effect.low,
         "high": effect.high, "confidence": rule.confidence, "p_value": effect.p_value,
         "must_be_below": bound},
        {"name": "health", "passed": bool(health_ok), "events": events,
         "max_events": rule.max_health_events}]
    if rule.probe_drift is not None:
        from tympan.loop.drift_rule import probe_drift_check

        say(f"  probe drift of the challenger (seed run {runs[0].id}) on the gold set")
        checks.append(probe_drift_check(runs[0], recipe, ids, waves, rule, where))
    passed = all(c["passed"] for c in checks)
    drift_ok = all(c["passed"] for c in checks if c["name"] == "probe_drift")
    pct = rule.confidence * 100
    summary = (f"gold {rule.metric} {champ_rate:.3f} -> {np.mean(chal_rates):.3f} "
               f"({effect.estimate:+.3f}, {pct:g}% CI [{effect.low:+.3f}, {effect.high:+.3f}]"
               f" over {len(runs)} seeds x {len(ids)} utterances; "
               + (f"must be below {bound:+.3f}" if not metric_ok else "gate rule met")
               + ("" if health_ok else f"; health events {events}")
               + ("" if drift_ok else f"; probe flags {checks[-1]['flagged_fraction']:.0%} "
                  f"of gold utterances, more than {rule.probe_drift:.0%}") + ")")
    version = None
    if passed:
        version = _register(champion.model, runs[0], where, spec.name, recipe)
    run = tympan.init(project=pipeline.project, store=where, tags=[KEY_TAG],
                      name=f"{spec.name}-{key[:8]}",
                      config={"key": key, "pipeline": str(pipeline.path),
                              "model": champion.model, "champion": champion.version,
                              "new_manifests": new, "trainings": [r.id for r in runs],
                              "trigger": trigger,
                              "gold": str(pipeline.resolve(spec.gold)), "gate": rule.model_dump()})
    with run:
        run.log({f"gold/{rule.metric}/champion": champ_rate,
                 f"gold/{rule.metric}/challenger": float(np.mean(chal_rates)),
                 "gate/effect": effect.estimate, "gate/low": effect.low,
                 "gate/high": effect.high, "gate/passed": float(passed)})
        run.log_artifact(json.dumps({"ids": ids, "champion": champ_e,
                                     "challenger": te.astype(int).tolist()}).encode(),
                         name="gold/utterances.json")
        run.log_artifact(models.gate_report(model=champion.model, champion=champion.version,
                                            challenger=version or 0, passed=passed,
                                            checks=checks, summary=summary),
                         name=models.GATE_REPORT)
    say(f"  gate: {'passed' if passed else 'failed'}: {summary}")
    return tympan.load_run(run.id, store=where)


def _register(model: str, run: Any, where: str, loop: str, recipe: str) -> int:
    """The version of ``run`` (registered now, or found: a resumed loop never registers the
    same training twice)."""
    import tympan.models as models

    for version in models.versions(model, store=where):
        if version.run_id == run.id:
            return version.version
    return models.register(run.id, model, store=where, recipe=recipe,
                           description=f"challenger of loop {loop}").version


def _split(text: Any) -> list[str]:
    return [part for part in str(text or "").split(",") if part.strip()]


def _model_name(ref: str) -> str:
    from tympan.store.models import parse_ref

    return parse_ref(ref).name


def _portable(store: str | None) -> str:
    from tympan.study.runner import _portable as portable

    return portable(store if store is not None else settings.get("TYMPAN_STORE"))
