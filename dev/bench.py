"""`make bench`: throughput, latency, memory and start-up of the service, next to a straightforward baseline.

Both run against one Firestore emulator and the same stored users, one at a time so they never share the CPU.
Load comes from wrk on loopback, bounded in time.
"""

import itertools
import os
import re
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from app.health import LIVENESS_PATH
from dev.emulator import FirestoreEmulator
from dev.network import free_port
from dev.service import ServiceProcess

USERS = 300
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
STARTS = 5
WARM_UP_SECONDS = 5
PROJECT = "demo-bench"
COLLECTION = f"bench-{int(time.time())}"


@dataclass
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def usernames() -> list[str]:
    letters = string.ascii_lowercase
    return ["Bench" + a + b for a, b in itertools.islice(itertools.product(letters, letters), USERS)]


def lua_script(directory: Path, method: str) -> Path:
    names = ", ".join(f'"{name}"' for name in usernames())
    body = 'wrk.headers["Content-Type"] = "application/json"\nlocal body = \'{"dateOfBirth": "1990-06-15"}\'\n'
    call = (
        'wrk.format("PUT", "/hello/" .. name, nil, body)' if method == "PUT" else 'wrk.format("GET", "/hello/" .. name)'
    )
    script = directory / f"{method.lower()}.lua"
    script.write_text(
        f"{body}local names = {{{names}}}\nlocal i = 0\n"
        "request = function()\n  i = i + 1\n  local name = names[(i % #names) + 1]\n"
        f"  return {call}\nend\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("P50 %f\\nP99 %f\\n", latency:percentile(50), latency:percentile(99)))\nend\n'
    )
    return script


def wrk(base_url: str, script: Path, connections: int, seconds: int = SECONDS) -> LoadResult:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base_url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return LoadResult(
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1]),  # type: ignore[index]
        p50_ms=float(re.search(r"P50 ([\d.]+)", output)[1]) / 1000,  # type: ignore[index]
        p99_ms=float(re.search(r"P99 ([\d.]+)", output)[1]) / 1000,  # type: ignore[index]
        errors=errors + (int(non_2xx[1]) if non_2xx else 0),
    )


def seed(base_url: str) -> None:
    for name in usernames():
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{base_url}/hello/{name}",
            data=b'{"dateOfBirth": "1990-06-15"}',
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            if response.status != 204:
                raise RuntimeError(f"seeding {name} answered {response.status}")


@dataclass
class Measured:
    runs: dict[str, LoadResult]
    peak_rss_mb: float


def measure(name: str, command: list[str], env: dict[str, str], work: Path, *, seed_users: bool) -> Measured:
    server = ServiceProcess(env, work / f"{name}.log", command)
    server.start()
    try:
        if seed_users:
            seed(server.base_url)
        get, put = lua_script(work, "GET"), lua_script(work, "PUT")
        # The emulator is a JVM: without a warm-up, whichever server runs first pays for its JIT.
        wrk(server.base_url, get, 32, seconds=WARM_UP_SECONDS)
        runs = {
            "GET c=32": wrk(server.base_url, get, 32),
            "GET c=128": wrk(server.base_url, get, 128),
            "PUT c=32": wrk(server.base_url, put, 32),
        }
        return Measured(runs, server.peak_rss_mb())
    finally:
        server.terminate()


def report(results: dict[str, Measured]) -> None:
    print(f"{'':10} {'load':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, measured in results.items():
        for load, run in measured.runs.items():
            print(
                f"{name:10} {load:10} {run.requests_per_second:9.0f} {run.p50_ms:8.1f} {run.p99_ms:8.1f} "
                f"{run.errors:7d}"
            )
        print(f"{name:10} peak RSS {measured.peak_rss_mb:.0f} MB")
    for load in results["service"].runs:
        ratio = results["service"].runs[load].requests_per_second / results["baseline"].runs[load].requests_per_second
        print(f"service/baseline requests/s, {load}: {ratio:.2f}x")


def main() -> int:
    if shutil.which("wrk") is None:
        print("make bench needs wrk: apt-get install wrk (Debian/Ubuntu) or brew install wrk")
        return 1
    work = Path(tempfile.mkdtemp(prefix="birthday-bench-"))
    emulator = FirestoreEmulator(free_port(), work / "emulator.log")
    emulator.start()
    env = {
        **os.environ,
        "FIRESTORE_EMULATOR_HOST": emulator.host,
        "BIRTHDAY_PROJECT_ID": PROJECT,
        "BIRTHDAY_COLLECTION": COLLECTION,
        "BIRTHDAY_LOG_LEVEL": "WARNING",
    }
    service_command = [sys.executable, "-m", "app"]
    baseline_command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "dev.baseline:create_baseline_app",
        "--host",
        "127.0.0.1",
        "--no-access-log",
        "--log-level",
        "warning",
        "--port",
        "{port}",
    ]
    results: dict[str, Measured] = {}
    try:
        starts = []
        for _ in range(STARTS):
            server = ServiceProcess(env, work / "service.log", service_command)
            starts.append(server.start())
            server.terminate()
        print(
            f"start-up to first 200 on {LIVENESS_PATH}: median {statistics.median(starts):.2f} s of {STARTS} "
            f"({', '.join(f'{s:.2f}' for s in starts)})"
        )
        results["service"] = measure("service", service_command, env, work, seed_users=True)
        results["baseline"] = measure("baseline", baseline_command, env, work, seed_users=False)
    finally:
        emulator.stop()
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
