"""The judgement after each traffic step: pure, so every threshold can be tested by itself."""

from dataclasses import dataclass

from deploy.metrics import RequestStats


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


def judge(candidate: RequestStats, stable: RequestStats | None, limits: Thresholds) -> list[str]:
    """Every gate the candidate fails, each with its figures; an empty list is a pass.

    The stable revision is a yardstick only where it served at least min_requests in the same window
    (never at the 100 % step, when it serves nothing).
    """
    failures = []
    if candidate.total < limits.min_requests:
        failures.append(f"traffic: {candidate.total} requests, fewer than the {limits.min_requests} needed to judge")
        return failures
    if candidate.error_rate > limits.max_error_rate:
        failures.append(
            f"error rate: {candidate.error_rate:.2%} 5xx ({candidate.server_errors}/{candidate.total}) "
            f"over the {limits.max_error_rate:.2%} limit"
        )
    if candidate.p99_ms is not None and candidate.p99_ms > limits.max_p99_ms:
        failures.append(f"latency: p99 {candidate.p99_ms:.0f} ms over the {limits.max_p99_ms:.0f} ms limit")
    if stable is None or stable.total < limits.min_requests:
        return failures
    if candidate.error_rate > stable.error_rate + limits.max_error_rate_increase:
        failures.append(
            f"error rate vs stable: {candidate.error_rate:.2%} against {stable.error_rate:.2%}, "
            f"more than {limits.max_error_rate_increase:.2%} higher"
        )
    if (
        candidate.p99_ms is not None
        and stable.p99_ms is not None
        and candidate.p99_ms > stable.p99_ms * limits.max_p99_ratio
    ):
        failures.append(
            f"latency vs stable: p99 {candidate.p99_ms:.0f} ms against {stable.p99_ms:.0f} ms, "
            f"more than {limits.max_p99_ratio}x"
        )
    return failures
