"""A server as a real process on a free loopback port: by default the service as the container runs it
(`python -m app`). The tests use it where they need signals, and `make bench` to time and measure servers."""

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.health import LIVENESS_PATH
from dev.network import answers_200, free_port, wait_until

REPOSITORY = Path(__file__).resolve().parents[1]


class ServiceProcess:
    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        command: Sequence[str] = (sys.executable, "-m", "app"),
        cwd: Path = REPOSITORY,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {**os.environ, **env, "PORT": str(self.port), "BIRTHDAY_HOST": "127.0.0.1"}
        # "{port}" in the command stands for the port chosen here, for servers that take it as an argument.
        self._command = [part.replace("{port}", str(self.port)) for part in command]
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30, *, until: str = LIVENESS_PATH, interval: float = 0.05) -> float:
        """Seconds from process start to the first 200 on `until` (a path), polled every `interval` seconds."""
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command, env=self.env, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(
            lambda: answers_200(self.base_url + until), timeout=timeout, what="the service starting", interval=interval
        )
        return time.monotonic() - started

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("start() first")
        return self._process

    def terminate(self, timeout: float = 15) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def peak_rss_mb(self) -> float:
        """The most memory the process has held so far (VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match is None:
            raise RuntimeError("no VmHWM in /proc status")
        return int(match[1]) / 1024

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
