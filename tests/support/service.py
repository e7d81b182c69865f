"""The service as a real process (`python -m app`, what the container runs), for tests that need signals."""

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.health import LIVENESS_PATH
from dev.network import answers_200, free_port, wait_until

REPOSITORY = Path(__file__).resolve().parents[2]


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
        self._command = list(command)
        self._cwd = cwd
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command, env=self.env, cwd=self._cwd, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(lambda: answers_200(self.base_url + LIVENESS_PATH), timeout=timeout, what="the service starting")

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "start() first"
        return self._process

    def terminate(self, timeout: float = 15) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
