"""`make run`: the service on http://127.0.0.1:$PORT, on a Firestore emulator of its own unless told otherwise.

- FIRESTORE_EMULATOR_HOST set: that emulator is used as it is.
- BIRTHDAY_STORE=memory set, or no gcloud/Java here: the in-memory store, after a warning.
- Otherwise: a Firestore emulator on a free port, stopped again when the service stops (Ctrl-C or SIGTERM).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from dev.emulator import EmulatorMissing, FirestoreEmulator
from dev.network import free_port

LOCAL_PROJECT = "demo-local"


def main() -> int:
    env = {**os.environ, "BIRTHDAY_HOST": "127.0.0.1", "PORT": os.environ.get("PORT", "8080")}
    env.setdefault("BIRTHDAY_ACCESS_LOG", "true")
    emulator: FirestoreEmulator | None = None
    if env.get("BIRTHDAY_STORE") == "memory":
        pass
    elif "FIRESTORE_EMULATOR_HOST" in env:
        say(f"Using the Firestore emulator at {env['FIRESTORE_EMULATOR_HOST']}")
    elif shutil.which("gcloud") and shutil.which("java"):
        log = Path(tempfile.gettempdir()) / "birthday-api-emulator.log"
        emulator = FirestoreEmulator(free_port(), log)
        say(f"Starting the Firestore emulator on {emulator.host} (log: {log})")
        try:
            emulator.start()
        except EmulatorMissing as missing:
            say(str(missing))
            return 1
        env["FIRESTORE_EMULATOR_HOST"] = emulator.host
    else:
        say("WARNING: gcloud or Java is missing, so the service keeps dates of birth in memory only:")
        say("they are gone when it stops. Install gcloud with the Firestore emulator, or use docker compose.")
        env["BIRTHDAY_STORE"] = "memory"
    env.setdefault("BIRTHDAY_PROJECT_ID", LOCAL_PROJECT)
    say(f"Serving on http://127.0.0.1:{env['PORT']} (Ctrl-C stops)")
    # A session of its own, so that a Ctrl-C reaches it once, forwarded from here, and not twice
    # (a second SIGINT makes uvicorn skip the graceful shutdown).
    service = subprocess.Popen([sys.executable, "-m", "app"], env=env, start_new_session=True)
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda number, _: service.send_signal(number))
    try:
        return service.wait()
    finally:
        if emulator is not None:
            say("Stopping the Firestore emulator")
            emulator.stop()


def say(message: str) -> None:
    print(f"make run: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
