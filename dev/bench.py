"""`make bench`: start-up, throughput, latency and memory of the service, side by side with a straightforward
baseline and, for reads, with two read ceilings (dev/ceiling.py).

Everything runs against one Firestore emulator and the same stored users. The machine is shared and noisy, so
every figure that is compared is measured in rounds: in each round the service, the baseline (and for GETs the
ceilings) run one after the other, in alternating order, and each ratio is the median of the rounds'
ratios, printed with its range. Load comes from wrk on loopback, bounded in time.
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
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from app.health import READINESS_PATH
from dev.emulator import FirestoreEmulator
from dev.network import free_port
from dev.service import ServiceProcess

USERS = 200
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
STARTS = 5
WARM_UP_SECONDS = 5
PROJECT = "demo-bench"
COLLECTION = f"bench-{int(time.time())}"
DATE_OF_BIRTH = "1990-06-15"
LOADS = (("GET", 32), ("GET", 128), ("PUT", 32))
SERVICE_COMMAND = (sys.executable, "-m", "app")
BASELINE_COMMAND = (
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
)


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
    body = f'wrk.headers["Content-Type"] = "application/json"\nlocal body = \'{{"dateOfBirth": "{DATE_OF_BIRTH}"}}\'\n'
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


def seed(base_url: str, attempts: int = 5) -> None:
    """Stores every user; a 503 (a cold emulator on a busy machine) is retried after its Retry-After."""
    for name in usernames():
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{base_url}/hello/{name}",
            data=f'{{"dateOfBirth": "{DATE_OF_BIRTH}"}}'.encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
                    break
            except urllib.error.HTTPError as error:
                if error.code != 503 or attempt == attempts - 1:
                    raise
                time.sleep(int(error.headers.get("Retry-After", "1")))


CEILINGS = {
    "client": "the async Firestore client alone, one document.get per read",
    "store": "the service's store alone, batching as under the service: the service if HTTP cost nothing",
}


def ceiling(kind: str, env: Mapping[str, str], seconds: int = SECONDS, readers: int = 32) -> float:
    """Reads per second with no HTTP in between (dev/ceiling.py), as many readers as wrk has connections."""
    output = subprocess.run(
        [sys.executable, "-m", "dev.ceiling", kind, str(seconds), str(readers), *usernames()],
        env=dict(env),
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    return float(output.strip())


def start_up(env: Mapping[str, str], work: Path, until: str) -> float:
    """Seconds from `python -m app` starting to its first 200 on `until`, polled every 10 ms."""
    server = ServiceProcess(env, work / "start-up.log", SERVICE_COMMAND)
    try:
        return server.start(until=until, interval=0.01)
    finally:
        server.terminate()


def spread(values: list[float], unit: str = "", digits: int = 2) -> str:
    return (
        f"median {statistics.median(values):.{digits}f}{unit} "
        f"(min {min(values):.{digits}f}, max {max(values):.{digits}f}, n={len(values)})"
    )


def measure_start_up(variants: Mapping[str, Mapping[str, str]], work: Path) -> None:
    """Each variant's start-up, the variants interleaved start by start so that they share the machine's moods."""
    first_get = f"/hello/{usernames()[0]}"
    targets = {READINESS_PATH: "first 200 on " + READINESS_PATH, first_get: "first served GET /hello/<user>"}
    times: dict[tuple[str, str], list[float]] = {(name, path): [] for name in variants for path in targets}
    for _ in range(STARTS):
        for name, env in variants.items():
            for path in targets:
                times[(name, path)].append(start_up(env, work, path))
    for (name, path), seconds in times.items():
        print(f"start-up, {name}, process start to {targets[path]}: {spread(seconds, ' s')}")


def run_rounds(
    servers: Mapping[str, ServiceProcess], work: Path, ceilings: Mapping[str, Callable[[], float]]
) -> dict[tuple[str, str], list[LoadResult]]:
    scripts = {method: lua_script(work, method) for method in ("GET", "PUT")}
    # The emulator is a JVM: without a warm-up, whichever server runs first pays for its JIT.
    for server in servers.values():
        wrk(server.base_url, scripts["GET"], 32, seconds=WARM_UP_SECONDS)
    results: dict[tuple[str, str], list[LoadResult]] = {}
    for round_number in range(ROUNDS):
        order = list(servers) if round_number % 2 == 0 else list(reversed(list(servers)))
        for method, connections in LOADS:
            load = f"{method} c={connections}"
            for name in order:
                result = wrk(servers[name].base_url, scripts[method], connections)
                results.setdefault((name, load), []).append(result)
            if (method, connections) == ("GET", 32):
                for kind, read in ceilings.items():
                    results.setdefault((f"{kind} ceiling", load), []).append(LoadResult(read(), 0, 0, 0))
        print(f"round {round_number + 1} of {ROUNDS} done", flush=True)
    return results


def report(results: dict[tuple[str, str], list[LoadResult]], peak_rss_mb: Mapping[str, float]) -> None:
    servers = set(peak_rss_mb)
    print(f"\n{'':14} {'load':10} {'req/s (median of rounds)':>26} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7}")
    for (name, load), runs in results.items():
        rates = [run.requests_per_second for run in runs]
        p50, p99 = statistics.median(run.p50_ms for run in runs), statistics.median(run.p99_ms for run in runs)
        latency = f"{p50:7.1f} {p99:7.1f} {sum(run.errors for run in runs):7d}" if name in servers else ""
        print(
            f"{name:14} {load:10} {statistics.median(rates):9.0f} [{min(rates):5.0f}-{max(rates):5.0f}]{'':6} {latency}"
        )
    for name, megabytes in peak_rss_mb.items():
        print(f"{name:14} peak RSS (VmHWM) {megabytes:.0f} MB")
    print()
    for _, load in [key for key in results if key[0] == "service"]:
        service = [run.requests_per_second for run in results[("service", load)]]
        baseline = [run.requests_per_second for run in results[("baseline", load)]]
        print(f"service / baseline, {load}: {spread([s / b for s, b in zip(service, baseline, strict=True)], 'x')}")
        for kind in CEILINGS:
            if (f"{kind} ceiling", load) in results:
                reads = [run.requests_per_second for run in results[(f"{kind} ceiling", load)]]
                ratios = [100 * s / r for s, r in zip(service, reads, strict=True)]
                print(f"service / {kind} ceiling, {load}: {spread(ratios, ' %', digits=0)}")


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
    print(f"bench: {USERS} users, {ROUNDS} rounds of {SECONDS} s per load, {os.cpu_count()} CPUs", flush=True)
    servers = {
        "service": ServiceProcess(env, work / "service.log", SERVICE_COMMAND),
        "baseline": ServiceProcess(env, work / "baseline.log", BASELINE_COMMAND),
    }
    try:
        for server in servers.values():
            server.start()
        seed(servers["service"].base_url)
        measure_start_up({"service": env}, work)
        results = run_rounds(servers, work, {kind: partial(ceiling, kind, env) for kind in CEILINGS})
        peak = {name: server.peak_rss_mb() for name, server in servers.items()}
    finally:
        for server in servers.values():
            server.kill()
        emulator.stop()
    report(results, peak)
    for kind, meaning in CEILINGS.items():
        print(f"{kind} ceiling: {meaning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
