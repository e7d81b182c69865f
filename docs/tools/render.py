"""`make diagram`: render every docs/*.mmd to an SVG beside it, with mermaid-cli and the system Chromium.

mermaid-cli is pinned in docs/tools/package.json and package-lock.json; `npm ci` installs it on first use,
without the browser puppeteer would otherwise download (Debian's /usr/bin/chromium is used instead, see
puppeteer.json). Each SVG gets a comment right after its opening tag naming its source and the sha256 of the
source's bytes, so tests/test_diagram.py can tell a stale render from a current one.

    python docs/tools/render.py                          # every docs/*.mmd
    python docs/tools/render.py docs/system-diagram.mmd  # just these
"""

# ruff: noqa: S603, T201 — a developer tool: it runs npm/npx (resolved to full paths) and reports to the terminal.

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
DOCS = TOOLS.parent
PUPPETEER_CONFIG = TOOLS / "puppeteer.json"
MMDC = TOOLS / "node_modules" / ".bin" / "mmdc"

OPENING_TAG = re.compile(rb"<svg\b[^>]*>")


class RenderError(Exception):
    """A diagram could not be rendered; the message says why."""


def stamp(source: Path) -> bytes:
    """The comment that ties a rendered SVG to the exact bytes of its source."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    return f"<!-- rendered from {source.name} sha256:{digest} -->".encode()


def insert_stamp(svg: bytes, comment: bytes) -> bytes:
    match = OPENING_TAG.search(svg)
    if match is None:
        raise RenderError("mermaid-cli wrote no <svg> element")
    return svg[: match.end()] + comment + svg[match.end() :]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RenderError(f"{name} is not on PATH: install Node.js and npm (Debian: apt-get install -y nodejs npm)")
    return path


def check_browser() -> None:
    browser = json.loads(PUPPETEER_CONFIG.read_text())["executablePath"]
    if not Path(browser).is_file():
        raise RenderError(f"{browser} is missing: install Chromium (Debian: apt-get install -y chromium)")


def environment() -> dict[str, str]:
    # puppeteer must never fetch a browser of its own: the system Chromium is the one to use.
    return {**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"}


def install() -> None:
    if MMDC.exists():
        return
    print("installing the pinned mermaid-cli (npm ci in docs/tools)")
    subprocess.run([tool("npm"), "ci", "--no-audit", "--no-fund"], cwd=TOOLS, env=environment(), check=True)


def render(source: Path) -> Path:
    target = source.with_suffix(".svg")
    started = time.monotonic()
    # --svgId: each diagram its own element id (and so its own CSS scope) should two be inlined in one page.
    command = [tool("npx"), "--no-install", "mmdc", "--quiet", "-p", PUPPETEER_CONFIG.name, "--svgId", source.stem]
    command += ["-i", str(source), "-o", str(target)]
    subprocess.run(command, cwd=TOOLS, env=environment(), check=True)
    target.write_bytes(insert_stamp(target.read_bytes(), stamp(source)))
    print(f"{target.relative_to(DOCS.parent)} from {source.name} in {time.monotonic() - started:.1f} s")
    return target


def sources(arguments: Sequence[str]) -> list[Path]:
    if not arguments:
        if not (found := sorted(DOCS.glob("*.mmd"))):
            raise RenderError(f"no .mmd file in {DOCS}")
        return found
    paths = [Path(argument).resolve() for argument in arguments]
    for path in paths:
        if path.suffix != ".mmd" or not path.is_file():
            raise RenderError(f"{path} is not a Mermaid source (.mmd)")
    return paths


def main(arguments: Sequence[str]) -> int:
    try:
        found = sources(arguments)
        check_browser()
        install()
        for source in found:
            render(source)
    except RenderError as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"render: {' '.join(map(str, error.cmd))} exited with {error.returncode}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
