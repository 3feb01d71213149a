"""The gate's probe-drift rule: does the challenger still see the gold set as its own data?

The challenger's reference profile is fitted on its training split (``tympan probe fit``, a
probe-fit run beside the training, with a held-out calibration fraction), and each gold
utterance is scored against it. The rule passes when at most ``probe_drift`` of the gold
utterances are flagged at ``probe_alpha``: a model whose new data pulled its representations
away from the gold domain flags many of them, even when its error rate has not moved yet.
On clean, in-domain gold speech about ``probe_alpha`` of the utterances are flagged by chance,
so the threshold must sit well above it.
"""

from __future__ import annotations

from typing import Any

from tympan.loop.spec import Gate


def probe_drift_check(run: Any, recipe: str, ids: list[str], waves: list[Any], rule: Gate,
                      store: str) -> dict[str, Any]:
    """The gate check (``passed``, the flagged fraction, the limit, the profile's run and the
    flagged gold utterances) for the training ``run``."""
    from tympan.probe.jobs import fit_profile
    from tympan.probe.scorer import Scorer
    from tympan.probe.target import load_target

    assert rule.probe_drift is not None
    fitted = fit_profile(run.id, store=store, recipe=recipe, data="split:train",
                         calibration=rule.probe_calibration)
    target = load_target(recipe, run)
    scorer = Scorer(target.load_model(run), fitted.profile, target.batch, target.sample_rate,
                    alpha=rule.probe_alpha)
    flagged = scorer.report(waves).flagged(rule.probe_alpha)
    fraction = float(flagged.mean())
    return {"name": "probe_drift", "passed": fraction <= rule.probe_drift,
            "flagged_fraction": fraction, "max_flagged": rule.probe_drift,
            "alpha": rule.probe_alpha, "profile_run": fitted.run_id, "model_run": run.id,
            "flagged": [i for i, f in zip(ids, flagged, strict=True) if f]}
