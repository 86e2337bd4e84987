"""The app's own sweeper of Gradio's temporary folder: uploads and rendered images expire after a TTL."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import gradio as gr

log = logging.getLogger(__name__)
DOWNLOADS = Path(tempfile.gettempdir()) / f"explorer-downloads-{os.getpid()}"


def write_download(name: str, text: str, folder: Path = DOWNLOADS) -> str:
    """Write a file offered for download in a folder of its own (one per request: two requests never share a
    file); Gradio copies it into its cache, and ``sweep_downloads`` removes the original later."""
    own = Path(folder) / uuid.uuid4().hex
    own.mkdir(parents=True)
    path = own / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def write_display_copy(image, folder: Path = DOWNLOADS) -> str:
    """A JPEG copy of an RGB photo for the page (a HEIC the browser cannot draw), in a folder of its own."""
    own = Path(folder) / uuid.uuid4().hex
    own.mkdir(parents=True)
    path = own / "photo.jpg"
    image.save(path, "JPEG", quality=90)
    return str(path)


def sweep_downloads(ttl_s: float, folder: Path = DOWNLOADS) -> int:
    """Remove the per-request download folders older than ttl_s; returns how many."""
    if not Path(folder).is_dir():
        return 0
    now, removed = time.time(), 0
    for own in Path(folder).iterdir():
        try:
            if now - own.stat().st_mtime > ttl_s:
                shutil.rmtree(own, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def sweep_temp_files(demo: gr.Blocks, ttl_s: float) -> int:
    """Delete the uploads and rendered images this app put in Gradio's temporary folder once older than ttl_s
    (files Gradio keeps for examples are left alone); returns how many were deleted.

    Gradio's own delete_cache iterates its live file sets from a worker thread while uploads add to them; the
    first "set changed size during iteration" ends its task for good (seen in the soak test). Here every pass
    works on a copy and a failed pass is simply retried at the next one."""
    keep = set()
    for component in list(demo.blocks.values()):
        keep.update(getattr(component, "keep_in_cache", set()))
    now, deleted = time.time(), 0
    for files in list(demo.temp_file_sets):
        for file in _copy_of(files):
            if file in keep:
                continue
            try:
                if now - os.lstat(file).st_ctime > ttl_s:
                    os.remove(file)
                    deleted += 1
                    files.discard(file)
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.dirname(file))  # Gradio's per-file folder, when now empty
            except FileNotFoundError:
                files.discard(file)
            except OSError as err:
                log.warning("could not delete temporary file %s: %s", file, err)
    return deleted


def _copy_of(files: set) -> list:
    for _ in range(10):
        try:
            return list(files)
        except RuntimeError:  # changed size while being copied (another thread added a file): try again
            continue
    return []


def start_temp_sweeper(demo: gr.Blocks, ttl_s: float) -> threading.Thread:
    """Sweep every half TTL (at least every 5 s) in a daemon thread."""

    def loop():
        while True:
            time.sleep(max(5.0, ttl_s / 2))
            try:
                sweep_temp_files(demo, ttl_s)
                sweep_downloads(ttl_s)
            except Exception:  # noqa: BLE001 (keep sweeping; say what went wrong)
                log.exception("temporary-file sweep failed; trying again next time")

    thread = threading.Thread(target=loop, name="temp-sweeper", daemon=True)
    thread.start()
    return thread
