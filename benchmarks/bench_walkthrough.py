"""Wall time of each step of the docs' walkthrough ("Bring your own model"), run as a user runs it, in a fresh
folder: the page's Python, the page's card, explorer-evaluate over 6 photos (and with --all-views), and the app
until it answers.

    python benchmarks/bench_walkthrough.py [--folder /tmp/walkthrough]

The first --all-views run fits the scope rule over the shared photo sets (the ImageNet gate and the model each run
once over them; their logits are then cached in checkpoints/.cache/scope), so a second run is timed too. Last line:
walkthrough_evaluate_s (explorer-evaluate's seconds for the page's 6 photos).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from explorer.settings import PROJECT_ROOT
from explorer.ui.launcher import launched_app

PAGE = PROJECT_ROOT / "docs" / "guide" / "bring-your-own-model.md"


def walkthrough_blocks() -> tuple[str, dict, str, str]:
    """The walkthrough's Python block, card, explorer-evaluate line and shown output (as tests/test_readme.py reads
    them: one block of each language in the section)."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("## From a saved state_dict to the dashboard") : text.index("## Model families")]
    blocks = {
        lang: re.findall(rf"```{lang}\n(.*?)\n```", section, flags=re.S) for lang in ("python", "json", "bash", "text")
    }
    (python,), (card,), (bash,), (output,) = blocks.values()
    return python, json.loads(card), bash, output


def timed(label: str, command: list[str], folder: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{label} failed: {done.stderr[-2000:]}")
    print(f"{label}: {seconds:.1f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/walkthrough"))
    work = parser.parse_args().folder
    shutil.rmtree(work, ignore_errors=True)
    (work / "checkpoints").mkdir(parents=True)
    python, card, bash, _ = walkthrough_blocks()
    timed("1. the page's Python (save the weights and classes)", [sys.executable, "-c", python], work)
    (work / "checkpoints" / "my_tits.json").write_text(json.dumps(card))
    for i, name in enumerate(("Great_Tit", "cyanistes_caeruleus", "Eurasian_Nuthatch")):
        (work / "my_tits_photos" / name).mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (120, 90), (60 * i, 90 * j, 200)).save(work / "my_tits_photos" / name / f"{j}.jpg")
    command = [*shlex.split(bash), "--checkpoint-dir", "checkpoints"]
    evaluate = timed("3. explorer-evaluate, 6 photos", command, work)
    timed("3'. --all-views, first run", [*command, "--all-views"], work)
    timed("3'. --all-views, again (logits cached)", [*command, "--all-views"], work)
    start = time.perf_counter()
    with launched_app(work / "app.log", "--checkpoint-dir", str(work / "checkpoints")):
        print(f"4. python app.py --checkpoint-dir checkpoints, until it answers: {time.perf_counter() - start:.1f} s")
    print(f"walkthrough_evaluate_s {evaluate:.1f}")


if __name__ == "__main__":
    main()
