"""What an image does when it runs: the rehearsal's container registry.

An image reference maps to a behaviour, so a scenario ships a bad release by its image alone, without a line
of fault code in app/: the stand-in injects the fault in front of the revision's real process.
"""

import hashlib
from dataclasses import dataclass
from typing import Literal

# Terraform's placeholder for the first revision (terraform/gcp/variables.tf, bootstrap_image): Google's hello
# container, which answers 200 on every path.
HELLO_IMAGE = "us-docker.pkg.dev/cloudrun/container/hello"


@dataclass(frozen=True)
class Behaviour:
    program: Literal["app", "hello"] = "app"
    """`python -m app` (this tree), or the hello placeholder."""
    server_error_share: float = 0.0
    """Share of user requests answered 500 in front of the process, spread evenly but with no period (fails)."""
    errors_after_requests: int = 0
    """The errors start once the revision has answered this many requests: a bug that shows only under load."""
    slowdown: float = 1.0
    """Each user request takes this many times as long as the process took to answer it."""
    startup_probe_fails: bool = False
    """The startup probe path answers 503, so the revision never becomes Ready."""
    crash_after_requests: int | None = None
    """The process is killed (SIGKILL) after answering this many user requests."""

    def fails(self, request_number: int) -> bool:
        """Whether the n-th user request (from 1) gets an injected 500: the golden-ratio (Weyl) sequence of n lands
        below the share. Any run of requests gets its share within two, and no period: a strict "every fifth"
        locks into step with periodic loads (3 client and 2 synthetic requests a second), so that every error
        fell on the synthetic ones and clients never saw one."""
        counted = request_number - self.errors_after_requests
        return counted > 0 and (counted * GOLDEN_RATIO_CONJUGATE) % 1 < self.server_error_share


GOLDEN_RATIO_CONJUGATE = (5**0.5 - 1) / 2

GOOD = Behaviour()


def digest_of(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class Registry:
    """Images by reference. An image that is not here does not exist, as in a registry."""

    def __init__(self) -> None:
        self._images: dict[str, Behaviour] = {HELLO_IMAGE: Behaviour(program="hello")}

    def push(self, repository: str, name: str, behaviour: Behaviour = GOOD) -> str:
        """Store a release under a digest made from its name; the image reference, by digest."""
        reference = f"{repository}@{digest_of(name)}"
        self._images[reference] = behaviour
        return reference

    def behaviour(self, image: str) -> Behaviour | None:
        return self._images.get(image)
