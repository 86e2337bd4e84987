"""A light load generator: Gradio's own REST protocol spoken by one asyncio loop with httpx, where gradio_client
spends ~130 ms of CPU per call in threads. One call is three requests:

1. ``POST gradio_api/upload`` (multipart) -> the server-side path of the photo;
2. ``POST gradio_api/call/<api>`` with ``{"data": [...]}`` -> ``{"event_id": ...}``;
3. ``GET gradio_api/call/<api>/<event_id>``, an event stream read until ``event: complete`` (its ``data:`` line is
   the outputs as a JSON list) or ``event: error``.

Used by ``load_test.py`` (``--client light``, the default) and checked by ``tests/test_hold_up.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx

FILE_META = {"_type": "gradio.FileData"}


class RestError(RuntimeError):
    """The server answered the call with an error event, or broke the protocol."""


async def upload(client: httpx.AsyncClient, url: str, photo: Path) -> str:
    """The path Gradio gave the uploaded photo on the server."""
    answer = await client.post(url + "gradio_api/upload", files={"files": (photo.name, photo.read_bytes())})
    answer.raise_for_status()
    return answer.json()[0]


async def call(client: httpx.AsyncClient, url: str, api: str, data: list, session: str | None = None) -> list:
    """The outputs of one queued call of ``api`` (no leading slash) with ``data``; RestError for an error event.
    ``session``: the user's session hash, kept across their calls as the browser and gradio_client keep theirs
    (without one, Gradio builds a new session state per call: ~20 ms on its event loop with this app's blocks)."""
    answer = await client.post(url + f"gradio_api/call/{api}", json={"data": data, "session_hash": session})
    answer.raise_for_status()
    event_id = answer.json()["event_id"]
    event = ""
    async with client.stream("GET", url + f"gradio_api/call/{api}/{event_id}") as stream:
        stream.raise_for_status()
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = json.loads(line[5:])
                if event == "error":
                    raise RestError(f"error event: {payload}")
                return payload
    raise RestError(f"the event stream ended without a result (last event {event!r})")


async def identify(client: httpx.AsyncClient, url: str, photo: Path, place: tuple, session: str | None = None) -> dict:
    """The identify API's JSON (top 5) for one photo; ``place`` is (lat, lon, date) with None and "" for none."""
    path = await upload(client, url, photo)
    lat, lon, date = place
    data = [{"path": path, "meta": FILE_META}, 5, "", 0.78, lat, lon, date, ""]
    return (await call(client, url, "identify", data, session))[0]


def check(result: dict, place: tuple) -> str | None:
    """Why an identify answer is wrong for the call, or None."""
    if not result.get("predictions"):
        return "no predictions"
    if (place[0] is not None) != (result.get("place") is not None):
        return "place not echoed"
    return None


async def timed_identify(client: httpx.AsyncClient, url: str, photo: Path, place: tuple, limit_s: float, session=None):
    """(seconds, error or None) for one call, bounded by ``limit_s``."""
    start = time.perf_counter()
    try:
        result = await asyncio.wait_for(identify(client, url, photo, place, session), limit_s)
        return time.perf_counter() - start, check(result, place)
    except Exception as err:  # noqa: BLE001 (every failure is counted and reported)
        return time.perf_counter() - start, f"{type(err).__name__}: {str(err)[:200]}"


async def _clients(url: str, jobs: list[list[tuple[Path, tuple]]], limit_s: float) -> list[tuple[float, str | None]]:
    limits = httpx.Limits(max_connections=2 * len(jobs), max_keepalive_connections=2 * len(jobs))
    async with httpx.AsyncClient(timeout=limit_s, limits=limits) as client:

        async def one_user(calls):
            session = uuid.uuid4().hex
            return [await timed_identify(client, url, photo, place, limit_s, session) for photo, place in calls]

        rows = await asyncio.gather(*(one_user(calls) for calls in jobs))
    return [row for user in rows for row in user]


def run_users(url: str, jobs: list[list[tuple[Path, tuple]]], limit_s: float) -> list[tuple[float, str | None]]:
    """Each inner list is one user's calls (photo, place), made one after another; the users run concurrently on
    one event loop. Returns (seconds, error or None) per call."""
    return asyncio.run(_clients(url, jobs, limit_s))
