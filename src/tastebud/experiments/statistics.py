"""The statistics of an experiment report: pure functions of counts and arrays, no I/O.

- Relative lift of a rate or a mean, ``r - 1`` with ``r = treatment / control``, and its
  confidence interval by the delta method on the ratio:
  ``Var(r) ≈ Var(t) / c² + t² Var(c) / c⁴`` (``t``, ``c`` the arms' estimates, ``Var`` the
  variance of each estimate).
- p-values: the pooled two-proportion z-test for rates, Welch's t-test for means.
- Sample-ratio mismatch: Pearson's chi-square of the users per arm against the configured
  split, flagged below ``SRM_ALPHA``.
- CUPED (Deng et al. 2013): ``y - θ (x - mean(x))`` with ``θ = cov(x, y) / var(x)`` pooled
  over arms, ``x`` the user's behaviour before the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]

SRM_ALPHA = 0.001
CONFIDENCE = 0.95


def _z(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def ratio_interval(
    treatment: float, var_treatment: float, control: float, var_control: float,
    *, confidence: float = CONFIDENCE,
) -> dict[str, float | None]:  # fmt: skip
    """``lift = treatment / control - 1`` and its delta-method interval (None when the
    control estimate is 0: no ratio)."""
    if control == 0:
        return {"lift": None, "ci_low": None, "ci_high": None}
    lift = treatment / control - 1
    variance = var_treatment / control**2 + treatment**2 * var_control / control**4
    half = _z(confidence) * math.sqrt(max(variance, 0.0))
    return {"lift": lift, "ci_low": lift - half, "ci_high": lift + half}


def proportion_comparison(
    hits_control: int, n_control: int, hits_treatment: int, n_treatment: int,
    *, confidence: float = CONFIDENCE,
) -> dict[str, float | None]:  # fmt: skip
    """Relative lift of the treatment's rate over the control's, its interval, and the
    two-sided p-value of the pooled two-proportion z-test."""
    if not n_control or not n_treatment:
        return {"lift": None, "ci_low": None, "ci_high": None, "p_value": None}
    p_c, p_t = hits_control / n_control, hits_treatment / n_treatment
    found = ratio_interval(p_t, p_t * (1 - p_t) / n_treatment, p_c, p_c * (1 - p_c) / n_control,
                           confidence=confidence)  # fmt: skip
    pooled = (hits_control + hits_treatment) / (n_control + n_treatment)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n_treatment))
    p_value = 1.0 if spread == 0 else math.erfc(abs(p_t - p_c) / spread / math.sqrt(2))
    return {**found, "p_value": p_value}


def mean_comparison(
    control: FloatArray, treatment: FloatArray, *, confidence: float = CONFIDENCE
) -> dict[str, float | None]:
    """Relative lift of the treatment's mean over the control's, its interval, and the
    two-sided p-value of Welch's t-test (per-user values: users without outcomes are 0)."""
    if control.size < 2 or treatment.size < 2:
        return {"lift": None, "ci_low": None, "ci_high": None, "p_value": None}
    m_c, m_t = float(control.mean()), float(treatment.mean())
    v_c = float(control.var(ddof=1)) / control.size
    v_t = float(treatment.var(ddof=1)) / treatment.size
    found = ratio_interval(m_t, v_t, m_c, v_c, confidence=confidence)
    if v_c + v_t == 0:
        p_value = 1.0 if m_c == m_t else 0.0
    else:
        p_value = float(stats.ttest_ind(treatment, control, equal_var=False).pvalue)
    return {**found, "p_value": p_value}


def sample_ratio(observed: Sequence[int], weights: Sequence[float]) -> dict[str, Any]:
    """Chi-square of users per arm against the configured weights (percents); ``flagged``
    when p < :data:`SRM_ALPHA`, the usual threshold: a mismatch means assignment or logging
    is broken and the lifts cannot be trusted."""
    total = sum(observed)
    if total == 0:
        return {"chi2": None, "p_value": None, "flagged": False, "expected": [0.0] * len(weights)}
    expected = [total * w / sum(weights) for w in weights]
    chi2, p_value = stats.chisquare(observed, expected)
    return {"chi2": float(chi2), "p_value": float(p_value), "flagged": bool(p_value < SRM_ALPHA),
            "expected": expected}  # fmt: skip


def cuped(values: FloatArray, covariate: FloatArray) -> tuple[FloatArray, float, float]:
    """CUPED-adjusted values, ``θ``, and the share of variance removed (0 when the covariate
    is constant: nothing to learn from it)."""
    x = covariate.astype(np.float64)
    y = values.astype(np.float64)
    var_x = float(x.var())
    if y.size < 2 or var_x == 0:
        return y, 0.0, 0.0
    theta = float(np.mean((x - x.mean()) * (y - y.mean()))) / var_x
    adjusted = y - theta * (x - x.mean())
    var_y = float(y.var())
    reduction = 0.0 if var_y == 0 else 1 - float(adjusted.var()) / var_y
    return adjusted, theta, reduction
