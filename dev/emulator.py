"""The real Firestore emulator, as a process the tests start and stop."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

from dev.network import answers_200, wait_until

INSTALL_HINT = (
    "the Firestore emulator is needed: install the gcloud CLI (https://cloud.google.com/sdk/docs/install), "
    "then `gcloud components install cloud-firestore-emulator` (or the google-cloud-cli-firestore-emulator "
    "package), and Java 11 or newer"
)


class EmulatorMissing(RuntimeError):
    pass


class FirestoreEmulator:
    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.host = f"127.0.0.1:{port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def running_at(cls, host: str) -> "FirestoreEmulator":
        """An emulator someone else started and stops; stop() leaves it alone."""
        emulator = cls(0, Path("/dev/null"))
        emulator.host = host
        return emulator

    def start(self, timeout: float = 90) -> None:
        gcloud = shutil.which("gcloud")
        if gcloud is None or shutil.which("java") is None:
            raise EmulatorMissing(INSTALL_HINT)
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [gcloud, "emulators", "firestore", "start", f"--host-port={self.host}"],
                env={**os.environ, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: gcloud starts a shell that starts Java, and stop() must reach all three.
                start_new_session=True,
            )
        try:
            wait_until(self._up, timeout=timeout, what=f"the Firestore emulator answering on {self.host}")
        except TimeoutError:
            self.stop()
            tail = self._log_path.read_text(errors="replace")[-2000:]
            raise EmulatorMissing(f"{INSTALL_HINT}. It did not start; its log ends with:\n{tail}") from None

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        except ProcessLookupError:
            pass
        self._process = None
        wait_until(lambda: not self._up(), timeout=10, what=f"the Firestore emulator on {self.host} stopping")

    def _up(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise EmulatorMissing(f"{INSTALL_HINT}. It exited with {self._process.returncode}")
        return answers_200(f"http://{self.host}/")
