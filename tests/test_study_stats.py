"""Hand-computed checks of tympan.study.stats and tympan.study.factorial."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from tympan.errors import InvalidInputError
from tympan.study.factorial import factorial_effects
from tympan.study.signflip import seeds_to_decide, sign_flip, smallest_sign_flip_p
from tympan.study.stats import (
    Effect,
    effect_from_differences,
    holm,
    paired_effect,
    seeds_needed,
    utterance_effect,
    verdict,
)


def test_effect_of_known_differences():
    diffs = [1.0, 2.0, 3.0, 4.0, 5.0]
    e = effect_from_differences(diffs, lower_is_better=True)
    assert e.estimate == 3.0
    assert e.n == 5 and e.n_boot == 10_000 and e.method == "seeds"
    assert e.interval == "bootstrap-t"  # 5 seeds: the sign-flip interval is unbounded
    assert e.test == "sign-flip" and e.p_value == 2 / 32  # all positive: the smallest p
    t = effect_from_differences(diffs, lower_is_better=True, test="t-test")
    assert t.p_value == pytest.approx(sps.ttest_1samp(diffs, 0.0).pvalue, rel=1e-12)
    assert (t.low, t.high, t.interval) == (e.low, e.high, e.interval)
    assert e.low < 3.0 < e.high and e.low > 0  # clearly worse for lower-is-better
    assert e.prob_improvement == 0.0
    assert effect_from_differences(diffs, lower_is_better=False).prob_improvement == 1.0


def test_same_inputs_and_seed_give_identical_effect():
    diffs = [0.3, -0.1, 0.5, 0.2, 0.0, 0.4]
    a = effect_from_differences(diffs, lower_is_better=True, seed=7)
    assert a == effect_from_differences(np.array(diffs), lower_is_better=True, seed=7)
    assert a != effect_from_differences(diffs, lower_is_better=True, seed=8)


def test_three_seeds_use_the_student_t_interval():
    d = np.array([1.0, 2.0, 4.0])
    e = effect_from_differences(d, lower_is_better=True)
    half = sps.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert e.interval == "student-t"
    assert (e.low, e.high) == pytest.approx((d.mean() - half, d.mean() + half))
    e90 = effect_from_differences(d, lower_is_better=True, confidence=0.90)
    assert e.low < e90.low < e90.high < e.high


def test_identical_differences_are_answered_exactly():
    zero = effect_from_differences([0.0, 0.0, 0.0], lower_is_better=True)
    assert (zero.estimate, zero.low, zero.high, zero.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert zero.prob_improvement == 0.5 and zero.interval == "degenerate"
    same = effect_from_differences([-0.5] * 4, lower_is_better=True, test="t-test")
    assert (same.estimate, same.low, same.high, same.p_value) == (-0.5, -0.5, -0.5, 0.0)
    assert same.prob_improvement == 1.0
    assert verdict(same, 0.0, lower_is_better=True) == "improves"
    # The sign-flip test gives 4 identical differences what 4 seeds can give: 2/16.
    flips = effect_from_differences([-0.5] * 4, lower_is_better=True)
    assert (flips.low, flips.high, flips.p_value) == (-0.5, -0.5, 0.125)
    assert effect_from_differences([0.0] * 7, lower_is_better=True).p_value == 1.0


def test_paired_effect_drops_pairs_with_nan():
    t = [1.0, np.nan, 3.0, 4.0]
    b = [0.5, 1.0, np.nan, 3.0]
    e = paired_effect(t, b, lower_is_better=True)
    assert e.n == 2 and e.estimate == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("treatment", "baseline", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "treatment has 3 values but baseline has 2"),
        ([1.0, np.nan, 3.0], [1.0, 2.0, np.nan], "only 1 of 3 seeds"),
        ([np.nan, np.nan], [np.nan, np.nan], "only 0 of 2 seeds"),
        ([1.0, np.inf], [1.0, 2.0], "infinite"),
        (["a", "b"], [1.0, 2.0], "must be numbers"),
    ],
)
def test_paired_effect_rejects_bad_input(treatment, baseline, message):
    with pytest.raises(InvalidInputError, match=message):
        paired_effect(treatment, baseline, lower_is_better=True)


def test_effect_rejects_too_few_differences_and_bad_options():
    with pytest.raises(InvalidInputError, match="at least 2 paired differences"):
        effect_from_differences([1.0, np.nan], lower_is_better=True)
    with pytest.raises(InvalidInputError, match="n_boot"):
        effect_from_differences([1.0, 2.0], lower_is_better=True, n_boot=10)
    with pytest.raises(InvalidInputError, match="confidence"):
        effect_from_differences([1.0, 2.0], lower_is_better=True, confidence=95)
    with pytest.raises(InvalidInputError, match="unknown test 'wilcoxon': use sign-flip or t-test"):
        effect_from_differences([1.0, 2.0], lower_is_better=True, test="wilcoxon")


def test_holm_worked_example():
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> running max .02 .03 .06 .06
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # capped at 1
    assert holm([]).shape == (0,)
    np.testing.assert_allclose(holm([0.02]), [0.02])
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        holm([0.1, np.nan])


def _effect(estimate, low, high):
    return Effect(estimate, low, high, 0.01, 0.5, 5, 10_000, "seeds")


def test_verdict_needs_small_p_and_an_interval_on_the_side_of_the_estimate():
    better = _effect(-1.0, -1.5, -0.5)
    worse = _effect(1.0, 0.5, 1.5)
    straddles = _effect(-1.0, -2.0, 0.1)
    assert verdict(better, 0.01, lower_is_better=True) == "improves"
    assert verdict(better, 0.01, lower_is_better=False) == "hurts"
    assert verdict(worse, 0.01, lower_is_better=True) == "hurts"
    assert verdict(worse, 0.01, lower_is_better=False) == "improves"
    assert verdict(better, 0.05, lower_is_better=True) == "no detectable effect"
    assert verdict(better, 0.04, lower_is_better=True, alpha=0.01) == "no detectable effect"
    assert verdict(straddles, 0.001, lower_is_better=True) == "no detectable effect"


def _table_2x3(interaction: float, noise: float = 0.0):
    """y = 10 + seed + 1.0[enc=gru] + {0, -0.5, 2.0}[fe] + interaction[gru, raw] + noise."""
    rng = np.random.default_rng(3)
    obs = []
    for seed in range(5):
        for enc, a in (("lstm", 0.0), ("gru", 1.0)):
            for fe, b in (("fbank", 0.0), ("mfcc", -0.5), ("raw", 2.0)):
                extra = interaction if (enc, fe) == ("gru", "raw") else 0.0
                value = 10 + seed + a + b + extra + noise * rng.normal()
                obs.append(({"enc": enc, "fe": fe}, seed, value))
    return obs


FACTORS = {"enc": ["lstm", "gru"], "fe": ["fbank", "mfcc", "raw"]}
BASE = {"enc": "lstm", "fe": "fbank"}


def test_factorial_2x3_additive_and_interaction():
    effects = factorial_effects(_table_2x3(0.6), FACTORS, BASE, lower_is_better=True)
    got = {(fe.kind, fe.levels): fe for fe in effects}
    assert list(got) == [
        ("main", ("gru",)), ("main", ("mfcc",)), ("main", ("raw",)),
        ("interaction", ("gru", "mfcc")), ("interaction", ("gru", "raw")),
    ]
    # main effect of gru averages over the 3 front ends: 1.0 + 0.6 / 3
    assert got["main", ("gru",)].effect.estimate == pytest.approx(1.0 + 0.6 / 3)
    assert got["main", ("mfcc",)].effect.estimate == pytest.approx(-0.5)
    assert got["main", ("raw",)].effect.estimate == pytest.approx(2.0 + 0.6 / 2)
    assert got["interaction", ("gru", "mfcc")].effect.estimate == pytest.approx(0.0, abs=1e-12)
    assert got["interaction", ("gru", "raw")].effect.estimate == pytest.approx(0.6)
    raw = got["interaction", ("gru", "raw")]
    assert raw.factors == ("enc", "fe") and raw.baselines == ("lstm", "fbank")
    assert raw.name == "enc=gru x fe=raw" and raw.effect.n == 5


def test_factorial_2x2_matches_per_seed_formula_with_noise():
    obs = [o for o in _table_2x3(0.6, noise=0.3) if o[0]["fe"] != "mfcc"]
    factors = {"enc": ["lstm", "gru"], "fe": ["fbank", "raw"]}
    effects = factorial_effects(obs, factors, BASE, lower_is_better=True)
    y = {(lv["enc"], lv["fe"], s): v for lv, s, v in obs}
    main = np.mean([(y["gru", "fbank", s] + y["gru", "raw", s]
                     - y["lstm", "fbank", s] - y["lstm", "raw", s]) / 2 for s in range(5)])
    inter = np.mean([(y["gru", "raw", s] - y["lstm", "raw", s])
                     - (y["gru", "fbank", s] - y["lstm", "fbank", s]) for s in range(5)])
    assert effects[0].effect.estimate == pytest.approx(main)
    assert effects[2].kind == "interaction"
    assert effects[2].effect.estimate == pytest.approx(inter)


def test_factorial_drops_a_seed_only_from_effects_that_need_its_missing_cell():
    obs = [o for o in _table_2x3(0.6) if not (o[1] == 4 and o[0] == {"enc": "gru", "fe": "raw"})]
    got = {fe.levels: fe.effect.n for fe in factorial_effects(obs, FACTORS, BASE,
                                                              lower_is_better=True)}
    assert got == {("gru",): 4, ("mfcc",): 5, ("raw",): 4, ("gru", "mfcc"): 5, ("gru", "raw"): 4}
    # NaN values are failed trials too
    obs = [(lv, s, math.nan if (s == 0 and lv["fe"] == "mfcc") else v)
           for lv, s, v in _table_2x3(0.6)]
    got = {fe.levels: fe.effect.n for fe in factorial_effects(obs, FACTORS, BASE,
                                                              lower_is_better=True)}
    assert got[("mfcc",)] == 4 and got[("raw",)] == 5


def test_factorial_too_few_seeds_raises_or_skips():
    obs = [o for o in _table_2x3(0.0) if not (o[1] > 0 and o[0]["fe"] == "raw")]
    with pytest.raises(InvalidInputError, match=r"main effect enc=gru: only 1 seed"):
        factorial_effects(obs, FACTORS, BASE, lower_is_better=True)
    kept = factorial_effects(obs, FACTORS, BASE, lower_is_better=True, on_too_few="skip")
    assert [fe.levels for fe in kept] == [("mfcc",), ("gru", "mfcc")]


@pytest.mark.parametrize(
    ("obs_filter", "factors", "baselines", "message"),
    [
        (lambda o: o[0] != {"enc": "gru", "fe": "raw"}, FACTORS, BASE, "not a full factorial"),
        (None, FACTORS, {"enc": "lstm", "fe": "wav"}, "unknown baseline level 'wav'"),
        (None, FACTORS, {"enc": "lstm"}, "no baseline level given for factor 'fe'"),
        (None, {"enc": ["lstm", "gru"], "fe": ["fbank", "mfcc"]}, BASE, "level not in the study"),
        (None, {"enc": ["lstm"], "fe": FACTORS["fe"]}, BASE, "at least 2 distinct levels"),
    ],
)
def test_factorial_rejects_malformed_studies(obs_filter, factors, baselines, message):
    obs = [o for o in _table_2x3(0.0) if obs_filter is None or obs_filter(o)]
    with pytest.raises(InvalidInputError, match=message):
        factorial_effects(obs, factors, baselines, lower_is_better=True)


def test_factorial_rejects_duplicates_and_missing_factors():
    obs = _table_2x3(0.0)
    with pytest.raises(InvalidInputError, match="two observations"):
        factorial_effects([*obs, obs[0]], FACTORS, BASE, lower_is_better=True)
    with pytest.raises(InvalidInputError, match="names factors"):
        factorial_effects([({"enc": "gru"}, 0, 1.0)], FACTORS, BASE, lower_is_better=True)


def test_utterance_effect_on_known_counts():
    counts = np.array([[10.0, 20.0, 30.0, 40.0]] * 2)
    base = np.array([[2.0, 4.0, 6.0, 8.0], [3.0, 4.0, 6.0, 7.0]])  # 20/100 in both seeds
    treat = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]])  # 10/100 in both seeds
    e = utterance_effect(treat, counts, base, counts)
    assert e.estimate == pytest.approx(-0.10)
    assert e.method == "seeds+utterances" and e.n == 2 and e.interval == "percentile"
    assert e.low <= -0.10 <= e.high < 0
    assert e.prob_improvement == 1.0  # every utterance has fewer errors
    assert e.p_value == pytest.approx(2 / 10_001)
    one = utterance_effect(treat[0], counts[0], base[0], counts[0])
    assert one.method == "utterances" and one.n == 1
    assert one.estimate == pytest.approx(-0.10)
    # treatment errors are half the baseline's on every utterance: the rate is halved
    # whatever the utterance draw, so the interval is the single point -0.10
    assert (one.low, one.high) == pytest.approx((-0.10, -0.10))


def test_utterance_effect_mean_of_per_seed_rates_and_zero_effect():
    counts = np.array([[5.0, 5.0], [10.0, 10.0]])
    base = np.array([[1.0, 1.0], [2.0, 2.0]])  # 0.2, 0.2
    treat = np.array([[2.0, 0.0], [1.0, 0.0]])  # 0.2, 0.05
    e = utterance_effect(treat, counts, base, counts, lower_is_better=True)
    assert e.estimate == pytest.approx(((0.2 - 0.2) + (0.05 - 0.2)) / 2)
    same = utterance_effect(base, counts, base, counts)
    assert (same.estimate, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_utterance_effect_rejects_bad_input():
    ok = np.ones((2, 3))
    with pytest.raises(InvalidInputError, match="same \\(seeds, utterances\\) shape"):
        utterance_effect(ok, ok, np.ones((2, 4)), np.ones((2, 4)))
    with pytest.raises(InvalidInputError, match="sums to 0"):
        utterance_effect(ok, np.zeros((2, 3)), ok, ok)
    with pytest.raises(InvalidInputError, match="NaN"):
        utterance_effect(np.full((2, 3), np.nan), ok, ok, ok)
    with pytest.raises(InvalidInputError, match="negative"):
        utterance_effect(-ok, ok, ok, ok)
    with pytest.raises(InvalidInputError, match="2 utterances"):
        utterance_effect(np.ones((2, 1)), np.ones((2, 1)), np.ones((2, 1)), np.ones((2, 1)))


def test_seeds_needed():
    clear = [-1.0, -1.2, -0.9, -1.1]
    assert seeds_needed(clear, lower_is_better=True) == 5
    assert seeds_needed([0.1, -0.1, 0.05, -0.05], lower_is_better=True) is None
    assert seeds_needed([0.0, 0.0, 0.0], lower_is_better=True) is None
    assert seeds_needed([0.2, 0.2, 0.2], lower_is_better=True) == 4
    # The sign-flip test cannot reach 0.05 below 6 seeds, 0.01 below 8.
    assert seeds_needed([0.2, 0.2, 0.2], lower_is_better=True, test="sign-flip") == 6
    assert seeds_needed(clear, lower_is_better=True, test="sign-flip") == 6
    assert seeds_needed(clear, lower_is_better=True, alpha=0.01, test="sign-flip") == 8
    moderate = [-0.3, 0.1, -0.5, -0.1, 0.05]
    n80 = seeds_needed(moderate, lower_is_better=True)
    n95 = seeds_needed(moderate, lower_is_better=True, power=0.95)
    assert n80 is not None and n95 is not None and 5 < n80 < n95 <= 64
    assert seeds_needed(moderate, lower_is_better=True, max_seeds=8) is None
    assert seeds_needed(moderate, lower_is_better=True) == n80  # deterministic


def test_round_values_fall_back_to_the_student_t_interval():
    # Resamples that repeat one value have a floating-point sd of ~1e-17, not 0: they are
    # degenerate all the same, and 3 seeds always have them in both tails.
    d = [0.2, 0.3, 0.4]
    e = effect_from_differences(d, lower_is_better=True)
    reference = sps.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert e.interval == "student-t"
    assert (e.low, e.high) == pytest.approx((reference.low, reference.high), rel=1e-9)
    assert (round(e.low, 3), round(e.high, 3)) == (0.052, 0.548)
    # Three seeds cannot decide without assuming normal noise: the sign-flip p is 2/8.
    assert e.p_value == 0.25
    assert verdict(e, e.p_value, lower_is_better=True) == "no detectable effect"
    t = effect_from_differences(d, lower_is_better=True, test="t-test")
    assert (t.low, t.high) == (e.low, e.high)
    assert verdict(t, t.p_value, lower_is_better=True) == "hurts"
    # 4 seeds at 99%: the 0.5% tails fall among the degenerate resamples (1/64 of them).
    e99 = effect_from_differences([0.2, 0.3, 0.4, 0.5], lower_is_better=True, confidence=0.99)
    reference = sps.ttest_1samp([0.2, 0.3, 0.4, 0.5], 0.0).confidence_interval(0.99)
    assert e99.interval == "student-t"
    assert (e99.low, e99.high) == pytest.approx((reference.low, reference.high), rel=1e-9)


def test_random_three_seed_studies_always_get_a_sane_interval():
    rng = np.random.default_rng(15)
    for i in range(300):
        # round values (a metric reported to 0.1) half of the time, continuous otherwise
        d = rng.integers(-9, 10, size=3) / 10 if i % 2 else rng.normal(0.3, 1.0, size=3)
        if np.ptp(d) == 0:
            continue
        e = effect_from_differences(d, lower_is_better=True, n_boot=1000, seed=i)
        reference = sps.ttest_1samp(d, 0.0).confidence_interval(0.95)
        assert e.interval == "student-t", d
        assert (e.low, e.high) == pytest.approx((reference.low, reference.high), rel=1e-9)


def _brute_force_sign_flip(d: np.ndarray) -> float:
    patterns = np.array(list(itertools.product([1.0, -1.0], repeat=d.size)))
    return float((np.abs(patterns @ d) >= abs(d.sum()) - 1e-12).mean())


def test_sign_flip_p_is_the_exact_randomisation_p():
    rng = np.random.default_rng(4)
    for n in (2, 3, 6, 9):
        d = rng.normal(0.3, 1.0, size=n)
        e = effect_from_differences(d, lower_is_better=True, n_boot=1000)
        assert e.p_value == pytest.approx(_brute_force_sign_flip(d), abs=1e-12)
    assert [smallest_sign_flip_p(n) for n in (2, 3, 5, 6)] == [0.5, 0.25, 0.0625, 0.03125]
    assert seeds_to_decide(0.05) == 6 and seeds_to_decide(0.05, comparisons=3) == 7
    assert seeds_to_decide(0.01) == 8


def test_sign_flip_interval_inverts_the_test():
    """Every mu inside the interval is kept by both one-sided tests at alpha / 2, and mu
    just outside is rejected: checked by brute force over all 2^n sign patterns."""
    rng = np.random.default_rng(5)
    d = rng.standard_t(3, size=8)
    patterns = np.array(list(itertools.product([1.0, -1.0], repeat=d.size)))

    def kept(mu: float) -> bool:
        x = d - mu
        upper = (patterns @ x >= x.sum() - 1e-12).mean()
        lower = (patterns @ x <= x.sum() + 1e-12).mean()
        return min(upper, lower) > 0.025

    _, low, high = sign_flip(d, 0.95, rng, 1000)
    assert kept(low + 1e-9) and kept(high - 1e-9) and kept((low + high) / 2)
    assert not kept(low - 1e-6) and not kept(high + 1e-6)
    e = effect_from_differences(d, lower_is_better=True)
    assert e.interval == "sign-flip+bootstrap-t"
    assert e.low <= low and e.high >= high  # widened to bootstrap-t where that is wider
    boot = effect_from_differences(d, lower_is_better=True, test="t-test")
    assert (e.low, e.high) == (min(low, boot.low), max(high, boot.high))
    # 5 seeds: no bounded 95% sign-flip interval exists; 6 seeds: it is [min, max].
    assert sign_flip(d[:5], 0.95, rng, 1000)[1:] == (None, None)
    assert sign_flip(d[:6], 0.95, rng, 1000)[1:] == (d[:6].min(), d[:6].max())


def test_more_than_16_seeds_sample_sign_patterns():
    d = np.random.default_rng(6).normal(0.5, 1.0, size=17)
    exact = _brute_force_sign_flip(d)
    e = effect_from_differences(d, lower_is_better=True, n_boot=20_000, seed=1)
    assert e.p_value == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 20_000))
    assert e.p_value != exact  # sampled, not enumerated
