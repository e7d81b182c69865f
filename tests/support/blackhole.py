import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def blackhole() -> Iterator[str]:
    """A loopback address that completes TCP handshakes and then never answers: a storage that hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        # Never accepted: the kernel finishes the handshake into the backlog, and nothing reads.
        listener.listen(64)
        host, port = listener.getsockname()
        yield f"{host}:{port}"
