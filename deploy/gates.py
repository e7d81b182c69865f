"""The judgement after each traffic step: pure, so every rule can be tested by itself (docs/decisions.md).

- No evidence never passes: fewer than min_requests candidate requests, or no latency data while there were
  requests, fails the gate. The stable revision is a yardstick only where it served min_requests itself.
- Error rates are judged by a 95 % Wilson score interval, not by the bare share: the candidate fails when even
  the interval's lower end is over the limit (one 5xx in 30 requests is not enough; two are), and fails the
  comparison when that lower end is over the stable revision's upper end plus the allowed increase.
- p99 is interpolated within its histogram bucket, and the candidate is failed on its lower 95 % confidence
  bound (an order statistic chosen by the binomial distribution): of 40 requests, its third slowest, so one or
  two slow requests are not enough. The comparison with the stable revision also needs evidence beyond the
  interpolation: the two figures in buckets that do not touch, or, where they touch, the whole distribution
  slower by the ratio too, its exact mean and its median. Neighbouring doubling buckets cannot tell a p99 4 %
  slower (250 and 260 ms, read as 254 and 509) from one three times slower (14 and 37 ms): the mean can, and
  the median keeps a few slow first requests of a new revision from passing for a slower release.
- The comparisons with the stable revision are made only while it serves users too (the caller passes no
  stable at 100 %): with the synthetic load alone its p99 is not a like-for-like yardstick.
"""

import math
from dataclasses import dataclass

from deploy.metrics import RequestStats

Z_95 = 1.959964
"""The two-sided 95 % normal quantile of the Wilson score interval."""


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 30
    """Fewer candidate requests than this in the window is no evidence: the gate waits, then fails."""
    max_error_rate: float = 0.01
    """Largest share of 5xx the candidate may answer."""
    max_error_rate_increase: float = 0.005
    """How far the candidate's 5xx share may exceed the stable revision's over the same window."""
    max_p99_ms: float = 1000
    """Slowest p99 latency the candidate may show."""
    max_p99_ratio: float = 1.5
    """How many times the stable revision's p99 the candidate's may be."""


def wilson_interval(errors: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound with few requests and with none or all failing."""
    if total == 0:
        return 0.0, 1.0
    share = errors / total
    centre = share + z * z / (2 * total)
    spread = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total))
    denominator = 1 + z * z / total
    return max(0.0, (centre - spread) / denominator), min(1.0, (centre + spread) / denominator)


def judge(candidate: RequestStats, stable: RequestStats | None, limits: Thresholds) -> list[str]:
    """Every gate the candidate fails, each with its figures; an empty list is a pass."""
    if candidate.total < limits.min_requests:
        return [f"traffic: {candidate.total} requests, fewer than the {limits.min_requests} needed to judge"]
    failures = []
    low, _ = wilson_interval(candidate.server_errors, candidate.total)
    if low > limits.max_error_rate:
        failures.append(
            f"error rate: {candidate.error_rate:.2%} 5xx ({candidate.server_errors}/{candidate.total}), at least "
            f"{low:.2%} with 95 % confidence, over the {limits.max_error_rate:.2%} limit"
        )
    slow = candidate.p99_at_least
    if candidate.p99 is None or slow is None:
        failures.append(f"latency: no latency data for {candidate.total} requests")
    elif slow.estimate > limits.max_p99_ms:
        failures.append(f"latency: p99 {_p99(candidate)} over the {limits.max_p99_ms:.0f} ms limit")
    if stable is None or stable.total < limits.min_requests:
        return failures
    _, stable_high = wilson_interval(stable.server_errors, stable.total)
    if low > stable_high + limits.max_error_rate_increase:
        failures.append(
            f"error rate vs stable: {candidate.error_rate:.2%} (at least {low:.2%}) against {stable.error_rate:.2%} "
            f"(at most {stable_high:.2%}), more than {limits.max_error_rate_increase:.2%} higher"
        )
    if stable.p99 is None:
        failures.append(f"latency vs stable: no latency data for the stable revision's {stable.total} requests")
    elif (
        slow is not None
        and slow.estimate > stable.p99.estimate * limits.max_p99_ratio
        and (slow.lower > stable.p99.upper or _all_slower(candidate, stable, limits.max_p99_ratio))
    ):
        failures.append(
            f"latency vs stable: p99 {_p99(candidate)} against {stable.p99}, more than {limits.max_p99_ratio}x"
            + _means(candidate, stable)
        )
    return failures


def _p99(stats: RequestStats) -> str:
    bound = "" if stats.p99_low is None else f" (at least {stats.p99_low} with 95 % confidence)"
    return f"{stats.p99}{bound}"


def _all_slower(candidate: RequestStats, stable: RequestStats, ratio: float) -> bool:
    """Whether the exact mean and the median are both over `ratio` times the stable's."""
    mine, theirs = _mean_and_median(candidate), _mean_and_median(stable)
    return mine is not None and theirs is not None and all(m > ratio * t for m, t in zip(mine, theirs, strict=True))


def _mean_and_median(stats: RequestStats) -> tuple[float, float] | None:
    return None if stats.mean_ms is None or stats.p50 is None else (stats.mean_ms, stats.p50.estimate)


def _means(candidate: RequestStats, stable: RequestStats) -> str:
    mine, theirs = _mean_and_median(candidate), _mean_and_median(stable)
    if mine is None or theirs is None:
        return ""
    return f" (mean {mine[0]:.0f} ms against {theirs[0]:.0f} ms, median {mine[1]:.0f} ms against {theirs[1]:.0f} ms)"
