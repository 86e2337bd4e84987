"""Many users at once: start the app the README way and drive its `identify` API with concurrent clients, each
calling with real photos (every call a different photo), half of the calls with a place and date.

    python benchmarks/load_test.py [--clients 16] [--calls 25] [--client light|gradio] [--data-root ../shared/data]

``--client light`` (default): every user is a task on one asyncio loop speaking Gradio's REST protocol with httpx
(`gradio_rest.py`); ``gradio``: one gradio_client Client per user, in threads (dear: ~130 ms of CPU per call).
Loopback only; every call has a time limit and the whole run is bounded by clients x calls. Prints the single-user
latency (sequential calls first, with the same client), then under load: errors, p50/p95 latency, throughput, the
CPU that the server and the load generator each spent per call, and the server's resident memory after a warm-up
and after the load. Last line: p95_vs_single.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio_rest
from bench_dashboard_browser import wait_warm

from explorer.settings import PROJECT_ROOT as ROOT
from explorer.settings import SHARED_DIR
from explorer.ui.launcher import launched_app

CALL_TIMEOUT_S = 120
PLACES = [  # (lat, lon, date): places where these North American birds are plausible, and a few where not
    (43.65, -79.38, "2021-05-16"),
    (37.77, -122.42, "2022-10-02"),
    (40.71, -74.0, ""),
    (29.76, -95.37, "2020-01-20"),
    (51.5, -0.12, "2023-07-01"),
]


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def real_photos(data_root: Path, count: int) -> list[Path]:
    """Distinct real photos (CUB-100 test split, then birds525-valid), so that no call repeats a photo."""
    from explorer.photos.manifests import cub100_manifest

    photos = [data_root / "cub100" / p for p in cub100_manifest(data_root / "cub100", "test")["path"]]
    photos += sorted((data_root / "birds525-valid").rglob("*.jpg"))
    photos = [p for p in photos if p.is_file()]
    if len(photos) < count:
        raise SystemExit(f"need {count} photos under {data_root}, found {len(photos)}")
    step = len(photos) // count
    return photos[::step][:count]


def one_call(client, photo: Path, index: int) -> tuple[float, str | None]:
    """(seconds, error or None) for one identify call; odd calls carry a place (and usually a date)."""
    from gradio_client import handle_file

    place = place_of(index)
    start = time.perf_counter()
    try:
        job = client.submit(handle_file(str(photo)), 5, "", 0.78, place[0], place[1], place[2], api_name="/identify")
        result = job.result(timeout=CALL_TIMEOUT_S)
        if not result.get("predictions"):
            return time.perf_counter() - start, "no predictions"
        if (place[0] is not None) != (result.get("place") is not None):
            return time.perf_counter() - start, "place not echoed"
        return time.perf_counter() - start, None
    except Exception as err:  # noqa: BLE001 (every failure is counted and reported)
        return time.perf_counter() - start, f"{type(err).__name__}: {str(err)[:200]}"


def place_of(index: int) -> tuple:
    """Odd calls carry a place (and usually a date), even ones none."""
    return PLACES[index % len(PLACES)] if index % 2 else (None, None, "")


def run_clients(url: str, photos: list[Path], clients: int, calls: int, offset: int = 0, kind: str = "light"):
    """``clients`` users, each making ``calls`` calls on its own photos, one after another."""
    if kind == "light":
        jobs = [
            [(photos[k * calls + i], place_of(offset + k * calls + i)) for i in range(calls)] for k in range(clients)
        ]
        return gradio_rest.run_users(url, jobs, CALL_TIMEOUT_S)
    from gradio_client import Client

    def worker(k: int):
        client = Client(url, verbose=False)
        return [one_call(client, photos[k * calls + i], offset + k * calls + i) for i in range(calls)]

    with ThreadPoolExecutor(clients) as pool:
        return [r for rows in pool.map(worker, range(clients)) for r in rows]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=25, help="calls per client")
    parser.add_argument("--single", type=int, default=20, help="sequential calls for the single-user latency")
    parser.add_argument("--client", choices=["light", "gradio"], default="light", help="the load generator")
    parser.add_argument("--model-workers", type=int, default=1, help="the app's --model-workers")
    shared = SHARED_DIR
    parser.add_argument("--data-root", type=Path, default=shared / "data")
    parser.add_argument("--log", type=Path, default=ROOT / "tmp" / "load_test_app.log")
    args = parser.parse_args(argv)
    warm_calls = 2
    total = args.single + args.clients * (warm_calls + args.calls)
    photos = real_photos(args.data_root, total)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    app = launched_app(args.log, "--model-workers", str(args.model_workers))  # python app.py on 127.0.0.1 only
    with app as (url, proc):
        wait_warm(args.log)  # start-up's background work done, as for a person arriving later
        single = run_clients(url, photos, 1, args.single, 0, args.client)
        single_errors = [e for _, e in single if e]
        single_p50 = statistics.median(t for t, _ in single)
        used = args.single
        warm = run_clients(url, photos[used:], args.clients, warm_calls, used, args.client)  # warm-up under concurrency
        used += args.clients * warm_calls
        rss_before = rss_mib(proc.pid)
        start, server_cpu, client_cpu = time.perf_counter(), cpu_s(proc.pid), sum(os.times()[:2])
        rows = run_clients(url, photos[used:], args.clients, args.calls, used, args.client)
        wall = time.perf_counter() - start
        server_cpu, client_cpu = cpu_s(proc.pid) - server_cpu, sum(os.times()[:2]) - client_cpu
        rss_after = rss_mib(proc.pid)
    latencies = [t for t, _ in rows]
    errors = [e for _, e in rows if e] + single_errors + [e for _, e in warm if e]
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    workers = f"{args.model_workers} model worker{'s' if args.model_workers > 1 else ''}"
    print(f"server: python app.py --model-workers {args.model_workers} ({url}, {workers}); {len(photos)} real photos")
    print(f"single_user_p50_s: {single_p50:.3f} ({args.single} sequential calls)")
    print(f"load: {args.clients} clients x {args.calls} calls = {len(rows)} calls, half with a place")
    print(f"wall_s: {wall:.1f}")
    print(f"p50_s: {p50:.3f}")
    print(f"p95_s: {p95:.3f}")
    print(f"max_s: {max(latencies):.3f}")
    print(f"throughput_calls_per_s: {len(rows) / wall:.2f}")
    print(f"server_cpu_ms_per_call: {1000 * server_cpu / len(rows):.0f} (model + Gradio; {os.cpu_count()} cores)")
    generator = "one asyncio loop, httpx" if args.client == "light" else f"{args.clients} gradio_client threads"
    print(
        f"client_cpu_ms_per_call: {1000 * client_cpu / len(rows):.0f} (the load generator: {generator}, same machine)"
    )
    print(f"rss_after_warmup_mib: {rss_before:.0f}")
    print(f"rss_after_load_mib: {rss_after:.0f}")
    print(f"rss_growth: {100 * (rss_after - rss_before) / rss_before:+.1f} % (target < 10 %)")
    for error in sorted(set(errors))[:10]:
        print(f"error: {error}")
    print(f"load_errors: {len(errors)}")
    print(f"p95_vs_single: {p95 / single_p50:.1f} (target <= 4)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
