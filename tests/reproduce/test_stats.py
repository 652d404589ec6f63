"""Student-t quantiles and paired seed differences against scipy (a test-only dependency)."""

import math

import pytest
from scipy import stats as sps

from darkseg.reproduce.stats import mean_std, paired_difference, t_cdf, t_interval, t_quantile


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 30, 200])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_scipy(df, p):
    assert t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("df", [1, 3, 12])
@pytest.mark.parametrize("t", [-4.0, -0.3, 0.0, 1.1, 6.5])
def test_t_cdf_matches_scipy(df, t):
    assert t_cdf(t, df) == pytest.approx(sps.t.cdf(t, df), abs=1e-12)


def test_t_quantile_rejects_invalid_arguments():
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)
    with pytest.raises(ValueError):
        t_quantile(0.5, 0)


def test_interval_matches_scipy_and_is_undefined_for_one_value():
    values = [2.5, -1.0, 4.0, 0.5, 3.25]
    lo, hi = t_interval(values)
    ref = sps.t.interval(0.95, len(values) - 1, loc=sum(values) / 5, scale=sps.sem(values))
    assert (lo, hi) == pytest.approx(ref, rel=1e-9)
    assert t_interval([1.0]) is None
    assert mean_std([3.0]) == (3.0, 0.0)


def test_paired_difference_pairs_by_seed_not_by_position():
    column = {0: 30.0, 1: 40.0, 2: 35.0}
    baseline = {2: 33.0, 0: 29.0, 1: 36.0, 7: 90.0}  # seed 7 has no partner and is left out
    d = paired_difference(column, baseline)
    assert d["seeds"] == [0, 1, 2] and d["per_seed"] == [1.0, 4.0, 2.0]
    assert d["mean"] == pytest.approx(7.0 / 3)
    ref = sps.ttest_rel([30.0, 40.0, 35.0], [29.0, 36.0, 33.0]).confidence_interval(0.95)
    assert d["ci95"] == pytest.approx([ref.low, ref.high], rel=1e-9)
    one = paired_difference({3: 10.0}, {3: 7.5})
    assert one["mean"] == 2.5 and one["ci95"] is None
    assert math.isfinite(one["mean"])
