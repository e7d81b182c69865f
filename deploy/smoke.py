"""The smoke suite: a few requests that prove a running service answers its contract end to end.

`make smoke BASE_URL=...` runs it against any URL; the rollout runs the same suite against a candidate
revision's own tag URL before any user traffic reaches it. It is a black box: it knows the contract from
deploy/client.py alone, and every username it uses is made fresh for the run, so no client can have written
it before and none can break the suite for every later rollout.
"""

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from deploy.client import (
    JSON_MEDIA_TYPE,
    LIVENESS_PATH,
    PROBLEM_MEDIA_TYPE,
    READINESS_PATH,
    Reply,
    days_message,
    fresh_username,
    hello_path,
    request,
)


def days_until(born: date, today: date) -> int:
    """Days from today to the next birthday, by the contract's rule: 29 February is celebrated on 28 February
    in common years. The suite's own arithmetic: it must not share the service's code, or share its bugs."""
    for year in (today.year, today.year + 1):
        try:
            birthday = born.replace(year=year)
        except ValueError:
            birthday = date(year, 2, 28)
        if birthday >= today:
            return (birthday - today).days
    raise AssertionError("unreachable: a birthday comes within a year")


def probes(today: date) -> list[date]:
    """Dates of birth whose answers tell a wrong count from the service's "today" being a day off this machine's
    near midnight: born today, yesterday and 100 days on. A count one too many answers "in 1 day" for today but
    not "Happy birthday!" for yesterday, as a service a day behind would."""
    return [(today + timedelta(days=shift)).replace(year=1992) for shift in (0, -1, 100)]


@dataclass
class SmokeReport:
    base_url: str
    failures: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        lines = [f"smoke {verdict} on {self.base_url}: {len(self.passed)} passed, {len(self.failures)} failed"]
        lines += [f"  ok   {name}" for name in self.passed]
        lines += [f"  FAIL {failure}" for failure in self.failures]
        return "\n".join(lines)


def expect(reply: Reply, status: int, content_type: str | None = None) -> str | None:
    if reply.status != status:
        return f"expected {status}, got {reply.status} {reply.body[:200]!r}"
    if content_type is not None and not reply.content_type.startswith(content_type):
        return f"expected Content-Type {content_type}, got {reply.content_type!r}"
    return None


def run_smoke(base_url: str, today: date | None = None, timeout: float = 10, ready_within: float = 30) -> SmokeReport:
    report = SmokeReport(base_url)
    today_utc = today or datetime.now(UTC).date()
    users, absent = [fresh_username("Smoke") for _ in range(3)], fresh_username("Absent")

    def check(name: str, step: Callable[[], str | None]) -> None:
        try:
            problem = step()
        except (OSError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem is None:
            report.passed.append(name)
        else:
            report.failures.append(f"{name}: {problem}")

    def call(method: str, path: str, body: object = None) -> Reply:
        return request(base_url, method, path, body, timeout)

    check("liveness answers 200", lambda: expect(call("GET", LIVENESS_PATH), 200))

    def ready() -> str | None:
        # A process that has just started answers 503 until its Firestore client is up.
        deadline = time.monotonic() + ready_within
        while (problem := expect(call("GET", READINESS_PATH), 200)) is not None and time.monotonic() < deadline:
            time.sleep(0.5)
        return problem

    check(f"readiness answers 200 within {ready_within:g} s (Firestore reachable)", ready)

    def round_trip() -> str | None:
        births = dict(zip(users, probes(today_utc), strict=True))
        for user, born in births.items():
            if problem := expect(call("PUT", hello_path(user), {"dateOfBirth": born.isoformat()}), 204):
                return f"PUT {problem}"
        answers = []
        for user in births:
            read = call("GET", hello_path(user))
            if problem := expect(read, 200, JSON_MEDIA_TYPE):
                return f"GET {problem}"
            message = read.json()
            answers.append(message.get("message") if isinstance(message, dict) else message)
        # The service's "today" may be a day either side of this machine's near midnight, for every user alike.
        for shift in (0, -1, 1):
            service_today = today_utc + timedelta(days=shift)
            if answers == [days_message(user, days_until(born, service_today)) for user, born in births.items()]:
                return None
        expected = [days_message(user, days_until(born, today_utc)) for user, born in births.items()]
        return f"GET answered {answers}, expected {expected} (or all of them for a day either side)"

    check("PUT then GET greets with the days to each stored birthday", round_trip)
    check(
        "an invalid date of birth is a 400 problem",
        lambda: expect(call("PUT", hello_path(users[0]), {"dateOfBirth": "1990-02-30"}), 400, PROBLEM_MEDIA_TYPE),
    )
    check(
        "an unknown user is a 404 problem",
        lambda: expect(call("GET", hello_path(absent)), 404, PROBLEM_MEDIA_TYPE),
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="for example http://127.0.0.1:8080 or a revision's tag URL")
    parser.add_argument("--timeout", type=float, default=10, help="seconds per request (default 10)")
    parser.add_argument("--ready-within", type=float, default=30, help="seconds to wait for readiness (default 30)")
    arguments = parser.parse_args(argv)
    report = run_smoke(arguments.base_url, timeout=arguments.timeout, ready_within=arguments.ready_within)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
