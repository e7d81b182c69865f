"""The rollout bucket: gcp-storage-emulator (from PyPI) as a process, and what `gcloud storage` needs to use it.

`gcloud storage` reaches it as the endpoint `http://storage.local/` (CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE)
through the stand-in's front end, like every other gcloud call. Two gaps between the emulator and Cloud
Storage matter to the lock, and the front end closes them, from the JSON API reference:

- gcloud streams `cp -` as a resumable upload to `/resumable/upload/storage/v1/b/{bucket}/o` (the path in
  gcloud's generated storage client); Cloud Storage serves that path and `/upload/storage/v1/...` alike, the
  emulator only the second, so the front end forwards one to the other;
- the emulator ignores generation preconditions, which the lock is made of: `ifGenerationMatch` on an upload
  or a delete (0 meaning "no live object") is checked against the live generation, atomically with the
  write, and a mismatch is 412 conditionNotMet. A read or delete of `generation=G` that is not the live
  generation is 404: the emulator keeps no noncurrent generations.
"""

import asyncio
import json
import subprocess
import sys
import urllib.parse
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import MultiDictProxy

from dev.network import answers_200, free_port, wait_until
from rehearsal.api import NotModelled
from rehearsal.revisions import forward

STORAGE_HOST = "storage.local"
PRECONDITIONS = {"ifGenerationMatch"}
NOT_MODELLED = {"ifGenerationNotMatch", "ifMetagenerationMatch", "ifMetagenerationNotMatch", "ifSourceGenerationMatch"}


def google_error(code: int, message: str, reason: str) -> web.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }
    return web.json_response(body, status=code)


class StorageEmulator:
    """gcp-storage-emulator, in memory, on a free loopback port."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gcp_storage_emulator",
                    "start",
                    "--host=127.0.0.1",
                    f"--port={self.port}",
                    "--in-memory",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(lambda: answers_200(self.url + "/"), timeout=timeout, what="the storage emulator answering")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None


class StorageFront:
    """Forwards gcloud's Cloud Storage requests to the emulator, closing the two gaps above."""

    def __init__(self, emulator_url: str, session: aiohttp.ClientSession) -> None:
        self._emulator = emulator_url
        self._session = session
        self._writes = asyncio.Lock()
        self._uploads: dict[str, tuple[str, str, int]] = {}
        """upload_id: (bucket, object, the generation the object must have when the upload completes)."""

    async def create_bucket(self, name: str) -> None:
        async with self._session.post(f"{self._emulator}/storage/v1/b", json={"name": name}) as response:
            if response.status not in (200, 409):
                raise RuntimeError(f"could not create bucket {name}: {response.status} {await response.text()}")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        if unknown := sorted(NOT_MODELLED & set(query)):
            raise NotModelled(f"Cloud Storage preconditions not modelled by the stand-in: {unknown}")
        path = request.rel_url.raw_path_qs.replace("/resumable/upload/storage/v1/", "/upload/storage/v1/", 1)
        body = await request.read()
        target = self._object_of(path, query, body)
        if request.method == "GET" or target is None:
            if target is not None and (refused := await self._live_generation_only(target, query)):
                return refused
            return await self._forward(request, path, body)
        async with self._writes:
            if refused := await self._live_generation_only(target, query):
                return refused
            expected = self._expected_generation(query, request.method, path)
            if expected is not None and (live := await self._generation(*target)) != expected:
                return google_error(
                    412,
                    f"At least one of the pre-conditions you specified did not hold. (live generation {live})",
                    "conditionNotMet",
                )
            response = await self._forward(request, path, body)
            if "uploadType=resumable" in path and "ifGenerationMatch" in query and "Location" in response.headers:
                upload_id = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)[
                    "upload_id"
                ][0]
                self._uploads[upload_id] = (target[0], target[1], int(query["ifGenerationMatch"]))
            return response

    def _expected_generation(self, query: MultiDictProxy[str], method: str, path: str) -> int | None:
        if "ifGenerationMatch" in query:
            return int(query["ifGenerationMatch"])
        if method == "PUT" and (upload_id := query.get("upload_id")) and upload_id in self._uploads:
            return self._uploads[upload_id][2]
        return None

    def _object_of(self, path: str, query: MultiDictProxy[str], body: bytes) -> tuple[str, str] | None:
        """(bucket, object) a request is about, when it is about one object."""
        plain = urllib.parse.urlsplit(path).path
        parts = plain.split("/")
        # /storage/v1/b/{bucket}/o/{object} and /upload/storage/v1/b/{bucket}/o
        if len(parts) >= 7 and parts[1] == "storage" and parts[3] == "b" and parts[5] == "o":
            return parts[4], urllib.parse.unquote("/".join(parts[6:]))
        if len(parts) == 7 and parts[1] == "upload" and parts[4] == "b" and parts[6] == "o":
            if upload_id := query.get("upload_id"):
                known = self._uploads.get(upload_id)
                return (known[0], known[1]) if known else None
            name = query.get("name")
            if name is None and body.startswith(b"{"):
                name = json.loads(body).get("name")
            return (parts[5], name) if name else None
        return None

    async def _live_generation_only(self, target: tuple[str, str], query: MultiDictProxy[str]) -> web.Response | None:
        if "generation" in query and int(query["generation"]) != await self._generation(*target):
            return google_error(404, f"No such object: {target[0]}/{target[1]}#{query['generation']}", "notFound")
        return None

    async def _generation(self, bucket: str, name: str) -> int:
        url = f"{self._emulator}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}"
        async with self._session.get(url) as response:
            if response.status == 404:
                return 0
            return int((await response.json())["generation"])

    async def _forward(self, request: web.Request, path: str, body: bytes) -> web.Response:
        # The emulator builds upload URLs from the Host header, so gcloud's next call comes back here too.
        headers = [*request.headers.items()]
        reply = await forward(self._session, request.method, self._emulator + path, headers, body, keep_host=True)
        forwarded = web.Response(status=reply.status, body=reply.body)
        for name, value in reply.headers:
            forwarded.headers.add(name, value)
        return forwarded
