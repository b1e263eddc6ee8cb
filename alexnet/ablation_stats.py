"""The statistics of ``alexnet ablate``'s report, in plain Python (no SciPy).

- ``t_quantile(p, df)``: the p-quantile of Student's t with ``df`` (real, > 0) degrees of freedom,
  by bisection on its CDF, which is written with the regularized incomplete beta function
  I_x(a, b) (``betainc``, evaluated by its continued fraction);
- ``welch(a, b)``: mean(a) - mean(b) with a 95 % interval by Welch's t: standard error
  sqrt(s_a^2/n_a + s_b^2/n_b) (sample variances) and Welch-Satterthwaite degrees of freedom
      df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1));
- ``verdict(interval, direction)``: "holds" / "not visible at this scale" / "reversed".
"""
from __future__ import annotations

import math

HOLDS, NOT_VISIBLE, REVERSED, UNDECIDED = "holds", "not visible at this scale", "reversed", "undecided"


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    # the continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a)
    if x > (a + 1) / (a + b + 2):
        return 1.0 - front * _betacf(b, a, 1.0 - x) / b
    return front * _betacf(a, b, x) / a


def _betacf(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz's method)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                    -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with df degrees of freedom: 1 - I_{df/(df+t^2)}(df/2, 1/2) / 2 for t >= 0."""
    if not df > 0:
        raise ValueError(f"t_cdf: df must be > 0, got {df}")
    tail = 0.5 * betainc(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (0 < p < 1), to about 1e-10."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"t_quantile: df must be > 0, got {df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_sd(values) -> tuple:
    """(mean, sample standard deviation with n - 1; None for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_sd: no values")
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, None
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def welch(a, b, level: float = 0.95) -> dict:
    """mean(a) - mean(b) and its ``level`` interval by Welch's t.

    Returns dict(diff, se, df, t, low, high); se, df, t, low, high are None when either sample has
    fewer than 2 values. Two samples without any spread give a zero-width interval (df = n_a + n_b - 2)."""
    ma, sa = mean_sd(a)
    mb, sb = mean_sd(b)
    out = dict(diff=ma - mb, se=None, df=None, t=None, low=None, high=None)
    if sa is None or sb is None:
        return out
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        df = float(len(a) + len(b) - 2)
    else:
        df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    t = t_quantile(0.5 + level / 2, df)
    out.update(se=se, df=df, t=t, low=out["diff"] - t * se, high=out["diff"] + t * se)
    return out


def verdict(low, high, direction: int) -> str:
    """The claim's verdict from an interval of (setting - baseline): ``direction`` +1 when the paper
    says the difference is positive, -1 when negative. "holds": the interval excludes 0 on the
    paper's side; "reversed": it excludes 0 on the other side; "not visible at this scale": it
    contains 0; "undecided": no interval (fewer than 2 seeds)."""
    if direction not in (1, -1):
        raise ValueError(f"verdict: direction must be +1 or -1, got {direction!r}")
    if low is None or high is None:
        return UNDECIDED
    if low > high:
        raise ValueError(f"verdict: the interval is empty ({low} > {high})")
    if direction * low > 0 and direction * high > 0:
        return HOLDS
    if direction * low < 0 and direction * high < 0:
        return REVERSED
    return NOT_VISIBLE
