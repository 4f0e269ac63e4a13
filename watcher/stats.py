"""The statistics the judge uses: exact binomial tails and histogram arithmetic. Pure, no scipy.

Every test is one-sided and exact on counts (true counts: the watcher differences raw counters,
see watcher.evidence), so a handful of requests never passes for evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def beta_inc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_cf(b, a, 1.0 - x) / b


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): exactly I_p(k, n - k + 1), fast for any n.

    At or below the mean (k <= floor(n p)) the tail is at least one half, which is no evidence
    of anything: it is reported as 1 without computing it (this keeps long windows cheap)."""
    if k <= 0 or k <= math.floor(n * p):
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return min(1.0, max(0.0, beta_inc(k, n - k + 1, p)))


def excess_p_value(x1: float, n1: float, x2: float, n2: float, ratio: float = 1.0) -> float:
    """One-sided p-value for "side 1's event rate is more than `ratio` x side 2's".

    Conditional binomial test (events as Poisson with the requests as exposure): given the
    events on both sides, under the null the share of side 1 is Binomial(total, r*n1/(r*n1+n2)).
    """
    k1, k2 = round(x1), round(x2)
    if k1 <= 0 or n1 <= 0 or n2 <= 0:
        return 1.0
    share = ratio * n1 / (ratio * n1 + n2)
    return binom_sf(k1, k1 + k2, share)


def above_p_value(x: float, n: float, p0: float) -> float:
    """One-sided p-value for "the share x/n is above p0" (exact binomial)."""
    k, m = round(x), round(n)
    if k <= 0 or m <= 0:
        return 1.0
    return binom_sf(k, m, min(1.0, max(0.0, p0)))


def share_above(buckets: Mapping[float, float], bound: float) -> tuple[float, float]:
    """(requests slower than `bound`, all requests) from cumulative bucket counts (le -> count)."""
    total = buckets.get(math.inf, 0.0)
    at_or_under = max((c for le, c in buckets.items() if le <= bound), default=0.0)
    return max(0.0, total - at_or_under), total


def quantile_bound(buckets: Mapping[float, float], q: float) -> float | None:
    """The upper bound of the bucket holding the q-quantile (None: no requests, or in +Inf)."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return None if math.isinf(le) else le
    return None


def bound_at_or_above(buckets: Mapping[float, float], value: float) -> float | None:
    """The smallest finite bucket bound >= value (None when every bound is below it)."""
    return min((le for le in buckets if value <= le < math.inf), default=None)


def histogram_quantile(buckets: Mapping[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile over cumulative counts: linear inside the bucket."""
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    bounds = sorted(buckets)
    for le in bounds:
        count = max(buckets[le], prev_c)
        if count >= rank:
            if math.isinf(le):
                return prev_le
            inside = count - prev_c
            return le if inside <= 0 else prev_le + (le - prev_le) * (rank - prev_c) / inside
        prev_le, prev_c = le, count
    return prev_le
