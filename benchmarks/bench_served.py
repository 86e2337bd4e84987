"""Served identify calls against the bare forward passes they need, with and without batched model calls.

    python benchmarks/bench_served.py [--clients 16] [--calls 25] [--servers 1:1 1:8 2:1 2:8] [--data-root ...]

1. Bare forwards, in this process: the default model's forward pass plus the ImageNet gate's (its scope rule needs
   it for every photo), on preprocessed real photos in batches of 1, 4 and 8: images/s, the best batch size being
   what the served calls could reach if nothing but the model cost anything.
2. Served: `python app.py --model-workers W --max-batch B` for each W:B of ``--servers`` in turn (1:1 is every
   call alone on one worker, the server before batching), 16 clients x 25 `identify` calls each (light REST client,
   every call a different real photo, half with a place: load_test.py's load), after a warm-up: calls/s, errors,
   and the server's resident memory growth under the load. ``rayR:B`` is the model tier on Ray Serve
   (`--ray-serve --tier-replicas R --max-batch B`: R replicas on a local Ray, the page in its own process).

Prints each server's calls/s, its ratio to the bare forwards' images/s and to the first server. Last line:
served_vs_forward of the last server (by default 2:8: two model workers, the docs' setting for a crowd on a CPU;
target >= 0.6 on 2 cores, 0 errors).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import load_test
import torch
from bench_dashboard_browser import wait_warm

from explorer.identify.scope_check import GATE_MODEL
from explorer.photos.images import load_image
from explorer.services.resources import load_resources
from explorer.settings import PROJECT_ROOT, SHARED_DIR, parse_settings

WARM_CALLS = 2


def bare_images_per_s(photos: list[Path], sizes=(1, 4, 8), rounds: int = 7) -> dict[int, float]:
    """Images/s of the default model's forward plus the gate's, per batch size (median of ``rounds`` passes over
    the photos, preprocessed beforehand)."""
    resources = load_resources(parse_settings([]))
    model = resources.get(resources.default_model)
    rule = resources.scope_rules.get(model.name)
    chain = [model] + ([resources.get(GATE_MODEL)] if rule is not None and rule.needs_gate else [])
    images = [load_image(p, 64 << 20, 10**8).image for p in photos]
    inputs = {c.name: torch.cat([c.preprocess(i) for i in images]) for c in chain}
    print(f"bare: {' + '.join(c.name for c in chain)} on {len(images)} photos, torch threads {torch.get_num_threads()}")
    times: dict[int, list[float]] = {size: [] for size in sizes}
    for round_ in range(rounds + 1):  # the first round warms up; sizes in turn, so that drift hits them all alike
        for size in sizes:
            start = time.perf_counter()
            with torch.no_grad():
                for c in chain:
                    x = inputs[c.name]
                    for i in range(0, len(x) - size + 1, size):
                        c.module(x[i : i + size])
            if round_:
                times[size].append(time.perf_counter() - start)
    found = {size: (len(images) // size) * size / statistics.median(times[size]) for size in sizes}
    for size in sizes:
        print(f"bare_images_per_s batch {size}: {found[size]:.1f}")
    return found


def served_calls_per_s(server: str, photos: list[Path], clients: int, calls: int, log: Path) -> tuple:
    """(calls/s, errors, memory growth) of `python app.py --model-workers W --max-batch B` (``server``: "W:B"; "rayR:B":
    `--ray-serve --tier-replicas R`, the front end's memory only) under ``clients`` x ``calls`` identify calls."""
    copies, batch = server.split(":")
    flags = ["--model-workers", copies] if copies.isdigit() else ["--ray-serve", "--tier-replicas", copies[3:]]
    with load_test.launched_app(log, *flags, "--max-batch", batch) as (url, proc):
        wait_warm(log)
        warm = load_test.run_clients(url, photos, clients, WARM_CALLS, 0)
        used, before = clients * WARM_CALLS, load_test.rss_mib(proc.pid)
        start = time.perf_counter()
        rows = load_test.run_clients(url, photos[used:], clients, calls, used)
        wall = time.perf_counter() - start
        growth = load_test.rss_mib(proc.pid) / before - 1
    errors = [e for _, e in [*warm, *rows] if e]
    for error in sorted(set(errors))[:5]:
        print(f"error: {error}")
    return len(rows) / wall, len(errors), growth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=25, help="calls per client")
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["1:1", "1:8", "2:1", "2:8"],
        help="each server's --model-workers:--max-batch, or rayR:B for --ray-serve --tier-replicas R --max-batch B",
    )
    parser.add_argument("--data-root", type=Path, default=SHARED_DIR / "data")
    args = parser.parse_args(argv)
    photos = load_test.real_photos(args.data_root, args.clients * (WARM_CALLS + args.calls))
    bare = max(bare_images_per_s(photos[:64]).values())
    served = {}
    for server in args.servers:
        log = PROJECT_ROOT / "tmp" / f"bench_served_{server.replace(':', 'x')}.log"
        served[server], errors, growth = served_calls_per_s(server, photos, args.clients, args.calls, log)
        copies, batch = server.split(":")
        how = f"--model-workers {copies}" if copies.isdigit() else f"--ray-serve --tier-replicas {copies[3:]}"
        print(
            f"served {how} --max-batch {batch}: {served[server]:.1f} calls/s, {errors} errors, "
            f"memory {growth:+.1%} under load (the page's process); {served[server] / bare:.2f} of the bare forwards, "
            f"{served[server] / served[args.servers[0]]:.2f}x the first server"
        )
    print(f"served_vs_forward: {served[args.servers[-1]] / bare:.2f} (target >= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
