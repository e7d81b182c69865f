"""The smoke suite: a few requests that prove a running service answers its contract end to end.

`make smoke BASE_URL=...` runs it against any URL; the rollout runs the same suite against a candidate
revision's own tag URL before any user traffic reaches it. It writes one reserved synthetic user,
SMOKE_USERNAME, and reads one that is never written, SMOKE_ABSENT_USERNAME.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from app.birthdays import days_until_birthday, greeting
from app.health import LIVENESS_PATH, READINESS_PATH
from app.problems import PROBLEM_MEDIA_TYPE

SMOKE_USERNAME = "Smoketest"
SMOKE_ABSENT_USERNAME = "Smoketestabsent"
# Any date works: the expected greeting comes from the app's own date rules, "Happy birthday!" on 1 July.
SMOKE_DATE_OF_BIRTH = date(1990, 7, 1)


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


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


def request(base_url: str, method: str, path: str, body: object = None, timeout: float = 10) -> Reply:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"the base URL must start with http:// or https://, got {base_url!r}")
    url = base_url.rstrip("/") + path
    outgoing = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (scheme checked)
    try:
        with urllib.request.urlopen(outgoing, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            return Reply(response.status, response.headers.get("Content-Type", ""), response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers.get("Content-Type", ""), error.read())


def run_smoke(base_url: str, today: date | None = None, timeout: float = 10, ready_within: float = 30) -> SmokeReport:
    report = SmokeReport(base_url)
    today_utc = today or datetime.now(UTC).date()

    def check(name: str, step: Callable[[], str | None]) -> None:
        try:
            problem = step()
        except (OSError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
        if problem is None:
            report.passed.append(name)
        else:
            report.failures.append(f"{name}: {problem}")

    def expect(reply: Reply, status: int, content_type: str | None = None) -> str | None:
        if reply.status != status:
            return f"expected {status}, got {reply.status} {reply.body[:200]!r}"
        if content_type is not None and not reply.content_type.startswith(content_type):
            return f"expected Content-Type {content_type}, got {reply.content_type!r}"
        return None

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
        stored = call("PUT", f"/hello/{SMOKE_USERNAME}", {"dateOfBirth": SMOKE_DATE_OF_BIRTH.isoformat()})
        if problem := expect(stored, 204):
            return f"PUT {problem}"
        read = call("GET", f"/hello/{SMOKE_USERNAME}")
        if problem := expect(read, 200, "application/json"):
            return f"GET {problem}"
        # The service's "today" may be a day either side of this machine's near midnight.
        accepted = {
            greeting(SMOKE_USERNAME, days_until_birthday(SMOKE_DATE_OF_BIRTH, today_utc + timedelta(days=shift)))
            for shift in (-1, 0, 1)
        }
        message = read.json()
        if not isinstance(message, dict) or message.get("message") not in accepted:
            return f"GET answered {message!r}, expected one of {sorted(accepted)}"
        return None

    check("PUT then GET returns the stored birthday", round_trip)
    check(
        "an invalid date of birth is a 400 problem",
        lambda: expect(call("PUT", f"/hello/{SMOKE_USERNAME}", {"dateOfBirth": "1990-02-30"}), 400, PROBLEM_MEDIA_TYPE),
    )
    check(
        "an unknown user is a 404 problem",
        lambda: expect(call("GET", f"/hello/{SMOKE_ABSENT_USERNAME}"), 404, PROBLEM_MEDIA_TYPE),
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
