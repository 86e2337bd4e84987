"""A long session: 1,000 sequential `identify` calls against one app, mixing good photos (with and without a
place) and bad input (corrupt, not an image, truncated, a pixel bomb, impossible places), watching the server's
memory and Gradio's temporary folder.

    python benchmarks/soak.py [--calls 1000] [--temp-ttl 20]

The app runs the README way with its own GRADIO_TEMP_DIR and a short --temp-ttl, so that the test can see uploads
being deleted. Prints the bad-input calls that were *not* refused cleanly (should be none), the good calls that
failed (none), resident memory after a warm-up and at the end, and the temporary files left after the TTL.
Last line: soak_failures (bad calls not refused cleanly + good calls that failed + leaked files + memory over 10 %).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

from load_test import ROOT, launched_app, rss_mib
from PIL import Image

from explorer.settings import SHARED_DIR

WARM_UP = 100


def good_photos(data_root: Path, count: int, folder: Path) -> list[Path]:
    """Real photos when ../shared/data is there; otherwise photos drawn here in every odd mode the app accepts."""
    photos = sorted((data_root / "birds525-valid").rglob("*.jpg"))[:count] if data_root.is_dir() else []
    if photos:
        return photos
    made = []
    for i, mode in enumerate(["RGB", "L", "RGBA", "CMYK", "P", "I;16"]):
        path = folder / f"drawn_{i}.png" if mode != "CMYK" else folder / f"drawn_{i}.jpg"
        Image.new(mode, (320, 240), 100 + 20 * i if mode in ("L", "P", "I;16") else None).save(path)
        made.append(path)
    return made


def bad_inputs(folder: Path) -> list[tuple[Path, dict, str]]:
    """(file, place, what the message must say) for input the app must refuse with a clear message."""
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    text = folder / "notes.jpg"
    text.write_text("this is a text file with a .jpg name\n" * 20)
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 120, 30)).save(buffer, "JPEG")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 3])
    bomb = folder / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 MP in a few kB
    fine = folder / "fine.png"
    Image.new("RGB", (200, 150), (40, 120, 40)).save(fine)
    return [
        (corrupt, {}, "corrupt"),
        (text, {}, "not an image"),
        (truncated, {}, "corrupt"),
        (bomb, {}, "MP"),
        (fine, {"lat": 95.0, "lon": 0.0}, "latitude 95.0 is outside"),
        (fine, {"lat": 10.0, "lon": 10.0, "date": "2999-01-01"}, "in the future"),
    ]


def count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:

    from gradio_client import Client, handle_file

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--temp-ttl", type=int, default=20, help="the app's --temp-ttl for this run (seconds)")
    shared = SHARED_DIR
    parser.add_argument("--data-root", type=Path, default=shared / "data")
    parser.add_argument("--log", type=Path, default=ROOT / "tmp" / "soak_app.log")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    temp_dir = work / "gradio-temp"
    temp_dir.mkdir()
    inputs = work / "inputs"
    inputs.mkdir()
    photos, bad = good_photos(args.data_root, 300, inputs), bad_inputs(inputs)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    unclean, failed, rss_warm, started = [], [], None, time.perf_counter()
    temp_env = {"GRADIO_TEMP_DIR": str(temp_dir)}
    with launched_app(args.log, "--temp-ttl", str(args.temp_ttl), env=temp_env) as (url, proc):
        baseline_files = count_files(temp_dir)
        client = Client(url, verbose=False)
        for i in range(args.calls):
            if i == min(WARM_UP, args.calls // 2):
                rss_warm = rss_mib(proc.pid)
            if i % 5 == 4:  # one call in five is bad input
                path, place, message = bad[(i // 5) % len(bad)]
                try:
                    client.predict(
                        handle_file(str(path)),
                        3,
                        "",
                        0.78,
                        place.get("lat"),
                        place.get("lon"),
                        place.get("date", ""),
                        api_name="/identify",
                    )
                    unclean.append(f"{path.name} {place}: accepted")
                except Exception as err:  # noqa: BLE001
                    if message not in str(err):
                        unclean.append(f"{path.name} {place}: {str(err)[:160]}")
                continue
            lat, lon, date = (43.65, -79.38, "2021-05-16") if i % 2 else (None, None, "")
            try:
                result = client.predict(
                    handle_file(str(photos[i % len(photos)])), 5, "", 0.78, lat, lon, date, api_name="/identify"
                )
                if not result["predictions"]:
                    failed.append(f"call {i}: no predictions")
            except Exception as err:  # noqa: BLE001
                failed.append(f"call {i}: {str(err)[:160]}")
        elapsed = time.perf_counter() - started
        rss_end = rss_mib(proc.pid)
        files_at_end = count_files(temp_dir)
        time.sleep(args.temp_ttl + max(10, args.temp_ttl // 2) + 5)  # one more deletion pass after the TTL
        files_after_ttl = count_files(temp_dir)
        alive = proc.poll() is None
    growth = 100 * (rss_end - rss_warm) / rss_warm
    leaked = max(0, files_after_ttl - baseline_files)
    print(f"calls: {args.calls} sequential ({args.calls // 5} bad input) in {elapsed:.0f} s; server alive: {alive}")
    print(
        f"good photos: {len(photos)} {'real' if 'drawn' not in photos[0].name else 'drawn'} photos, half with a place"
    )
    print(f"bad_inputs_not_refused_cleanly: {len(unclean)}")
    print(f"good_calls_failed: {len(failed)}")
    for line in (unclean + failed)[:10]:
        print(f"  {line}")
    print(f"rss_after_warmup_mib: {rss_warm:.0f} (after {min(WARM_UP, args.calls // 2)} calls)")
    print(f"rss_at_end_mib: {rss_end:.0f}")
    print(f"rss_growth: {growth:+.1f} % (target < 10 %)")
    print(f"temp_files: {baseline_files} at start, {files_at_end} at the end, {files_after_ttl} after the TTL")
    failures = len(unclean) + len(failed) + leaked + (growth >= 10) + (not alive)
    print(f"soak_failures: {failures}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
