"""NPMI (normalised pointwise mutual information) of two trace filters, as MLflow's
CalculateTraceFilterCorrelation computes it from four counts (mlflow/store/analytics/
trace_correlation.py): -1 never together, 0 independent, 1 always together, NaN undefined.
Pure functions: the view counts in SQL and calls these."""

from __future__ import annotations

import math
from typing import NamedTuple

JEFFREYS_PRIOR = 0.5  # the additive smoothing of MLflow's `npmi_smoothed`
NAN = float("nan")


class Npmi(NamedTuple):
    npmi: float
    npmi_smoothed: float


def npmi_from_counts(joint: int, first: int, second: int, total: int) -> Npmi:
    """Both values from the contingency counts; NaN when either filter matches nothing."""
    if total <= 0 or first == 0 or second == 0:
        return Npmi(NAN, NAN)
    n11, n10, n01 = joint, first - joint, second - joint
    n00 = total - first - second + joint
    if min(n11, n10, n01, n00) < 0:
        return Npmi(NAN, NAN)
    raw = -1.0 if joint == 0 else _npmi(n11, n10, n01, n00, 0)
    return Npmi(raw, _npmi(n11, n10, n01, n00, JEFFREYS_PRIOR))


def _npmi(n11: float, n10: float, n01: float, n00: float, smoothing: float) -> float:
    a, b, c, d = (n + smoothing for n in (n11, n10, n01, n00))
    total, first, second = a + b + c + d, a + b, a + c
    if first <= 0 or second <= 0 or a <= 0:
        return NAN
    if n10 == 0 and n01 == 0 and n00 == 0:
        return 1.0  # always together (only possible unsmoothed)
    log_a, log_total = math.log(a), math.log(total)
    pmi = (log_a + log_total) - (math.log(first) + math.log(second))
    return max(-1.0, min(1.0, pmi / -(log_a - log_total)))
