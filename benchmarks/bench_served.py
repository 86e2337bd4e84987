"""Served identify calls against the bare forward passes they need, with and without batched model calls.

    python benchmarks/bench_served.py [--clients 16] [--calls 25] [--batches 1 8] [--data-root ../shared/data]

1. Bare forwards, in this process: the default model's forward pass plus the ImageNet gate's (its scope rule needs
   it for every photo), on preprocessed real photos in batches of 1, 4 and 8: images/s, the best batch size being
   what the served calls could reach if nothing but the model cost anything.
2. Served: `python app.py --max-batch B` for each B of ``--batches`` in turn (1: every call alone, today's server),
   16 clients x 25 `identify` calls each (light REST client, every call a different real photo, half with a place:
   load_test.py's load), after a warm-up: calls/s and errors.

Prints each server's calls/s, its ratio to the bare forwards' images/s and to the unbatched server. Last line:
served_vs_forward (the last --batches value; target >= 0.6 on 2 cores, with 0 errors).
"""

from __future__ import annotations

import argparse
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


def bare_images_per_s(photos: list[Path], sizes=(1, 4, 8), rounds: int = 5) -> dict[int, float]:
    """Images/s of the default model's forward plus the gate's, per batch size (median of ``rounds`` passes over
    the photos, preprocessed beforehand)."""
    resources = load_resources(parse_settings([]))
    model = resources.get(resources.default_model)
    rule = resources.scope_rules.get(model.name)
    chain = [model] + ([resources.get(GATE_MODEL)] if rule is not None and rule.needs_gate else [])
    images = [load_image(p, 64 << 20, 10**8).image for p in photos]
    inputs = {c.name: torch.cat([c.preprocess(i) for i in images]) for c in chain}
    print(f"bare: {' + '.join(c.name for c in chain)} on {len(images)} photos, torch threads {torch.get_num_threads()}")
    found = {}
    for size in sizes:
        times = []
        for _ in range(rounds + 1):  # the first round warms up
            start = time.perf_counter()
            with torch.no_grad():
                for c in chain:
                    x = inputs[c.name]
                    for i in range(0, len(x) - size + 1, size):
                        c.module(x[i : i + size])
            times.append(time.perf_counter() - start)
        done = (len(images) // size) * size
        found[size] = done / sorted(times[1:])[len(times[1:]) // 2]
        print(f"bare_images_per_s batch {size}: {found[size]:.1f}")
    return found


def served_calls_per_s(batch: int, photos: list[Path], clients: int, calls: int, log: Path) -> tuple[float, int]:
    """(calls/s, errors) of `python app.py --max-batch batch` under ``clients`` x ``calls`` identify calls."""
    with load_test.launched_app(log, "--max-batch", str(batch)) as (url, _proc):
        wait_warm(log)
        warm = load_test.run_clients(url, photos, clients, WARM_CALLS, 0)
        used = clients * WARM_CALLS
        start = time.perf_counter()
        rows = load_test.run_clients(url, photos[used:], clients, calls, used)
        wall = time.perf_counter() - start
    errors = [e for _, e in [*warm, *rows] if e]
    for error in sorted(set(errors))[:5]:
        print(f"error: {error}")
    return len(rows) / wall, len(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--calls", type=int, default=25, help="calls per client")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="the servers' --max-batch values")
    parser.add_argument("--data-root", type=Path, default=SHARED_DIR / "data")
    args = parser.parse_args(argv)
    photos = load_test.real_photos(args.data_root, args.clients * (WARM_CALLS + args.calls))
    bare = max(bare_images_per_s(photos[:64]).values())
    served = {}
    for batch in args.batches:
        log = PROJECT_ROOT / "tmp" / f"bench_served_{batch}.log"
        served[batch], errors = served_calls_per_s(batch, photos, args.clients, args.calls, log)
        print(
            f"served --max-batch {batch}: {served[batch]:.1f} calls/s, {errors} errors "
            f"({args.clients} clients x {args.calls} calls); {served[batch] / bare:.2f} of the bare forwards"
        )
    first, last = args.batches[0], args.batches[-1]
    print(f"batched_vs_unbatched: {served[last] / served[first]:.2f} (--max-batch {last} against {first})")
    print(f"served_vs_forward: {served[last] / bare:.2f} (target >= 0.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
