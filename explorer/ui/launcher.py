"""Start the app the README way (`python app.py ...`) as a child process on a free loopback port, and wait until
it answers. Used by the tests and by the load and soak benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from explorer.settings import PROJECT_ROOT as ROOT

CHROMIUM_PATH = "/usr/bin/chromium"  # Debian's chromium, for the browser tests and benchmarks (never a downloaded one)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def launched_app(
    log: Path, *args: str, env: dict | None = None, timeout_s: float = 300
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yields (URL, process) of `python app.py --port P [args]` (127.0.0.1); stops it on exit. Its output goes to
    ``log``, quoted in the error when it exits or does not answer in time."""
    port = free_port()
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{Path(log).read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(
                        f"app.py did not answer within {timeout_s:.0f} s:\n{Path(log).read_text()[-3000:]}"
                    ) from None
                time.sleep(1)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
