"""Model cards, generated from what the store holds and never edited by hand.

``build_card`` gathers, for one version: what it is (recipe, front end, output, size,
parameters), the data it trained on (manifests with hours, speakers and languages per
split), its metrics with 95% intervals per evaluation split (from the run, where the recipe
logged ``<metric>_low``/``<metric>_high``), the findings of the knowledge base that apply to
its config, its probe profile and the health events of its training, what later steps
measured (export, latency), and its lineage and aliases. ``card_markdown`` renders it. The
web UI's version page shows the same data.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tympan.registry.records import ModelVersion, evidence_label
from tympan.store import Store

SKIPPED_SPLITS = ("train", "probe")  # metric prefixes that are not evaluations
BOUNDS = ("_low", "_high")


def build_card(store: Store, version: ModelVersion, registry: Any) -> dict[str, Any]:
    """The card of ``version`` as plain data (JSON-able)."""
    from tympan.errors import NotFoundError
    from tympan.records.record import run_by_id

    try:
        record = run_by_id(store, version.run_id)
    except NotFoundError:
        record = None
    return {
        "uri": version.uri, "model": version.model, "version": version.version,
        "project": version.project, "description": version.description,
        "aliases": version.aliases, "created_at": version.created_at,
        "created_by": version.created_by,
        "what": {"recipe": version.recipe.get("entry"), "module": version.recipe.get("module"),
                 "front_end": version.signature.get("front_end") or {},
                 "audio": version.signature.get("audio") or {},
                 "inputs": version.signature.get("inputs") or [],
                 "outputs": version.signature.get("outputs") or [],
                 "parameters": version.parameters, "size": version.size,
                 "sha256": version.sha256, "artifact": version.artifact},
        "data": version.lineage.get("data") or [],
        "metrics": metrics_with_intervals(record.summary if record else {}),
        "findings": applicable_findings(store, version.config),
        "probe": probe_summary(record) if record else None,
        "reports": version.reports,
        "lineage": {"run": version.lineage.get("run") or {"id": version.run_id},
                    "git": version.lineage.get("git") or {},
                    "study": version.lineage.get("study"), "parent": version.parent,
                    "packages": version.lineage.get("packages") or {}},
        "alias_history": [e.as_dict() for e in registry.history(version.model)
                          if version.version in (e.from_version, e.to_version)],
    }


def metrics_with_intervals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """``{split}/{metric}`` values with their 95% bounds where logged, by split."""
    rows = []
    for key in sorted(summary):
        split, slash, metric = key.partition("/")
        if not slash or split in SKIPPED_SPLITS or key.endswith(BOUNDS):
            continue
        last = summary[key].last
        low, high = summary.get(key + "_low"), summary.get(key + "_high")
        rows.append({"split": split, "metric": metric, "value": last,
                     "low": low.last if low else None, "high": high.last if high else None})
    return rows


def applicable_findings(store: Store, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Pooled findings about a component level this config uses (or its baseline): which
    components were shown to help or hurt, in which studies and recipes."""
    from tympan.config import flatten
    from tympan.study.findings import pooled_findings

    flat = {key.rsplit(".", 1)[-1]: value for key, value in flatten(config or {}).items()}
    flat |= flatten(config or {})
    out = []
    for finding in pooled_findings(store):
        components = finding.component.split(" x ")
        levels, baselines = finding.level.split(" x "), finding.baseline.split(" x ")
        uses = [str(flat.get(c)) for c in components]
        if uses == levels:
            role = "uses the level"
        elif uses == baselines:
            role = "uses the baseline"
        else:
            continue
        out.append({"component": finding.component, "level": finding.level,
                    "baseline": finding.baseline, "metric": finding.metric,
                    "direction": finding.direction, "role": role,
                    "verdict": finding.pooled_verdict, "estimate": finding.estimate,
                    "low": finding.low, "high": finding.high, "studies": finding.studies,
                    "improves": finding.improves, "hurts": finding.hurts,
                    "contradiction": finding.contradiction, "contexts": finding.contexts})
    return out


def probe_summary(record: Any) -> dict[str, Any]:
    """The training run's probe: layers watched, health events, and its reference profiles,
    anomaly and drift reports (from its ``tympan probe`` runs)."""
    from tympan.records.probe import probe_data

    data = probe_data(record)
    fits = [c for c in _children(record) if "probe-fit" in (c.tags or [])]
    profiles = [{"run": c.id, "detector": (c.config.get("probe") or {}).get("detector"),
                 "data": (c.config.get("probe") or {}).get("data"),
                 "layers": _last(c, "probe/layers"),
                 "calibration": _last(c, "probe/n_calibration")} for c in fits]
    return {"layers": len(data.layers), "events": data.events,
            "profiles": profiles,
            "anomaly": [{"label": a.get("label"), "flagged": a.get("flagged"),
                         "inputs": len(a.get("inputs") or []), "alpha": a.get("alpha"),
                         "run": a.get("run")} for a in data.anomaly],
            "drift": [{"label": d.get("label"), "run": d.get("run"),
                       "drifted": sum(1 for r in d.get("layers") or [] if r.get("drifted")),
                       "layers": len(d.get("layers") or [])} for d in data.drift]}


def _children(record: Any) -> list[Any]:
    from tympan.records.record import child_runs

    return child_runs(record)


def _last(record: Any, key: str) -> float | None:
    found = record.summary.get(key)
    return None if found is None else found.last


# -- Markdown --------------------------------------------------------------------------------

def card_markdown(card: dict[str, Any]) -> str:
    what = card["what"]
    front = what["front_end"]
    lines = [f"# {card['model']} version {card['version']}", "",
             f"`{card['uri']}`" + (f" · aliases: {', '.join('@' + a for a in card['aliases'])}"
                                    if card["aliases"] else ""), ""]
    if card["description"]:
        lines += [card["description"], ""]
    lines += ["*Generated by tympan from the store; do not edit by hand.*", "",
              "## What it is", "",
              f"- recipe `{what['recipe']}` (module `{what['module']}`); project "
              f"{card['project']}",
              f"- input: mono audio at {what['audio'].get('sample_rate')} Hz; front end: "
              + (", ".join(f"{k} {v}" for k, v in front.items() if v is not None
                           and k != "output") or "not described"),
              f"- output: {front.get('output') or _shapes(what['outputs'])}",
              f"- model inputs {_shapes(what['inputs'])}, outputs {_shapes(what['outputs'])}",
              f"- {_count(what['parameters'])} parameters; weights `{what['artifact']}` "
              f"{_size(what['size'])} (sha256 `{what['sha256'][:16]}`)", "", "## Data", ""]
    if not card["data"]:
        lines += ["No data manifest was recorded with this version.", ""]
    for manifest in card["data"]:
        lines += [f"`{manifest['path']}` (sha256 `{manifest['sha256'][:16]}`)", "",
                  "| split | utterances | hours | speakers | languages |",
                  "|---|---:|---:|---:|---|"]
        for split, s in manifest["splits"].items():
            lines.append(f"| {split} | {s['utterances']} | {s['hours']:.3f} | {s['speakers']} "
                         f"| {', '.join(s['languages']) or '—'} |")
        lines.append("")
    lines += ["## Metrics (95% intervals)", ""]
    if card["metrics"]:
        lines += ["| split | metric | value | 95% interval |", "|---|---|---:|---|"]
        for m in card["metrics"]:
            interval = (f"[{_num(m['low'])}, {_num(m['high'])}]" if m["low"] is not None
                        and m["high"] is not None else "not recorded")
            lines.append(f"| {m['split']} | {m['metric']} | {_num(m['value'])} | {interval} |")
    else:
        lines.append("The training run logged no evaluation metrics.")
    lines += ["", "## What studies found about its components", ""]
    if card["findings"]:
        lines += ["| component | this model | compared with | metric | pooled effect [95% CI] "
                  "| verdict | studies |", "|---|---|---|---|---:|---|---:|"]
        for f in card["findings"]:
            mine, other = ((f["level"], f["baseline"]) if f["role"] == "uses the level"
                           else (f["baseline"], f["level"]))
            warn = " ⚠ contradicted" if f["contradiction"] else ""
            lines.append(f"| {f['component']} | {mine} | {other} | {f['metric']} | "
                         f"{f['estimate']:+.3g} [{f['low']:.3g}, {f['high']:.3g}] "
                         f"({f['level']} vs {f['baseline']}) | {f['verdict']}{warn} | "
                         f"{f['studies']} ({', '.join(f['contexts']['studies'])}) |")
    else:
        lines.append("No finding in the knowledge base is about a level this model uses.")
    lines += ["", "## Probe", ""]
    probe = card["probe"]
    if probe is None:
        lines.append("The training run is not in this store.")
    else:
        events = probe["events"]
        lines.append(f"- training health: {len(events)} event{'s' if len(events) != 1 else ''}"
                     + (":" if events else " (none fired)"))
        lines += [f"  - step {e.get('step')}: {e.get('rule')} on {e.get('layer') or 'the model'}"
                  f" — {e.get('message')}" for e in events[:10]]
        if probe["profiles"]:
            for p in probe["profiles"]:
                lines.append(f"- reference profile (run {p['run']}): {_count(p['layers'])} "
                             f"layers, detector {p['detector']}, fitted on {p['data']}")
        else:
            lines.append("- no reference profile yet (`tympan probe fit "
                         f"{card['uri']}`)")
        lines += [f"- anomaly report {a['label']}: {a['flagged']} of {a['inputs']} inputs "
                  f"flagged at alpha {a['alpha']}" for a in probe["anomaly"]]
        lines += [f"- drift {d['label']}: {d['drifted']} of {d['layers']} layers drifted"
                  for d in probe["drift"]]
    lines += ["", "## Export and latency", ""]
    reports = [r for r in card["reports"] if r["kind"] in ("export", "latency")]
    if reports:
        lines += [f"- {r['kind']} {r['name']}: " + ", ".join(
            f"{k} {_num(v) if isinstance(v, float) else v}" for k, v in r["data"].items())
            for r in reports]
    else:
        lines.append("Not measured yet.")
    others = [r for r in card["reports"] if r["kind"] not in ("export", "latency")]
    lines += [f"- {r['kind']} {r['name']}: " + ", ".join(f"{k} {v}" for k, v in r["data"].items())
              for r in others]
    lineage = card["lineage"]
    git = lineage["git"]
    study = lineage["study"]
    lines += ["", "## Lineage", "",
              f"- run {lineage['run'].get('id')} ({lineage['run'].get('name', '')})",
              f"- git {git.get('commit') or 'not recorded'}"
              + (" with uncommitted changes (diff sha256 "
                 f"`{(git.get('diff_sha256') or '')[:16]}`)" if git.get("dirty") else ""),
              "- study " + (f"{study['name']} ({study['id']})" + (
                  f", trial {study['trial']['arm']} seed {study['trial']['seed']}"
                  if study.get("trial") else "") if study else "none"),
              f"- fine-tuned from {lineage['parent']}" if lineage["parent"] else
              "- trained from scratch (no parent version)",
              f"- registered by {card['created_by']}"]
    if card["alias_history"]:
        lines += ["", "## Alias history of this version", "",
                  "| when (UTC) | alias | change | by | reason | evidence |",
                  "|---|---|---|---|---|---|"]
        for e in card["alias_history"]:
            lines.append(f"| {_utc(e['at'])} | {e['alias']} | {e['action']} "
                         f"{e['from_version'] or '—'} → {e['to_version'] or '—'} | "
                         f"{e['actor']} ({e['authority']}) | {e['reason'] or '—'} | "
                         f"{evidence_label(e['evidence'])} |")
    return "\n".join(lines) + "\n"


def write_card(ref: str, out: str | os.PathLike[str] | None = None, *,
               store: str | os.PathLike[str] | None = None) -> Path:
    """Write the version's card as Markdown (default ``model-cards/NAME-vN.md``)."""
    found = card(ref, store=store)
    path = Path(out) if out is not None else Path("model-cards") / (
        f"{found['model']}-v{found['version']}.md")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(found["markdown"], encoding="utf-8")
    return path


def card(ref: str, *, store: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The card of the version ``ref`` names: its data, and ``markdown``."""
    from tympan.registry.api import open_registry
    from tympan.store.models import parse_ref

    registry = open_registry(store)
    remote = getattr(registry, "card", None)
    if remote is not None:
        return remote(parse_ref(ref))
    data = build_card(registry.store, registry.version(parse_ref(ref)), registry)
    return data | {"markdown": card_markdown(data)}


def _shapes(specs: list[dict[str, Any]]) -> str:
    return ", ".join(f"{s['dtype']}[{', '.join(str(d) for d in s['shape'])}]" for s in specs) \
        or "—"


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}"


def _count(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _utc(at: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
