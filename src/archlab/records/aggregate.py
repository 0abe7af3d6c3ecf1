"""Seeds aggregated: jobs that differ only in their seed form one configuration, summarised by
mean, standard deviation and a 95% interval of the mean (Student's t), and the two best
configurations are tested against each other.

The test: a paired t-test over the seeds both configurations ran (the same seed gives both the
same data order and split, so pairing removes that share of the noise); with fewer than two
shared seeds, Welch's t-test on the two sets of values. "Not distinguishable" means p >= 0.05.
Both from Student's t distribution in `scipy.special` (`scipy.stats` takes seconds to import).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from scipy.special import stdtr, stdtrit

LEVEL = 0.95
ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and the `LEVEL` interval of the mean of `n` values."""

    n: int
    mean: float
    sd: float
    low: float
    high: float


def summarise(values: Sequence[float]) -> Summary:
    """NaN for what `values` cannot tell: sd and interval need two values."""
    values = [v for v in values if not math.isnan(v)]
    n = len(values)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = statistics.fmean(values)
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan)
    sd = statistics.stdev(values)
    half = float(stdtrit(n - 1, 0.5 + LEVEL / 2)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Comparison:
    """The best configuration against the runner-up on the ranking metric."""

    test: str  # "paired t-test", "Welch t-test" or "none"
    n: int  # seeds paired (paired test) or the smaller group's size
    p_value: float
    distinguishable: bool

    def sentence(self, best: str, second: str, metric: str) -> str:
        if self.test == "none":
            return (
                f"`{best}` and `{second}` cannot be told apart on `{metric}`: a test needs two "
                "seeds of each (add seeds, e.g. `seed=1,2,3`)."
            )
        verdict = "is" if self.distinguishable else "is NOT"
        return (
            f"`{best}` {verdict} distinguishable from `{second}` on `{metric}` at {self.n} seeds "
            f"({self.test}, p = {self.p_value:.3g}; threshold {ALPHA})."
        )


def _two_sided_p(t: float, df: float) -> float:
    return float(2 * stdtr(df, -abs(t)))


def compare(best: Mapping[Hashable, float], second: Mapping[Hashable, float]) -> Comparison:
    """Test two configurations' values, each keyed by its seeds."""
    shared = [s for s in best if s in second]
    if len(shared) >= 2:
        differences = [best[s] - second[s] for s in shared]
        mean, sd, n = statistics.fmean(differences), statistics.stdev(differences), len(shared)
        if sd == 0:  # no spread: the t statistic is 0/0 or infinite
            p = 1.0 if mean == 0 else 0.0
        else:
            p = _two_sided_p(mean / (sd / math.sqrt(n)), n - 1)
        return Comparison("paired t-test", n, p, p < ALPHA)
    a, b = list(best.values()), list(second.values())
    if min(len(a), len(b)) < 2:
        return Comparison("none", min(len(a), len(b)), math.nan, False)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    gap = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0:
        p = 1.0 if gap == 0 else 0.0
    else:
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
        p = _two_sided_p(gap / math.sqrt(va + vb), df)
    return Comparison("Welch t-test", min(len(a), len(b)), p, p < ALPHA)
