"""Many users and long sessions, run the README way: the load test and the soak (benchmarks/), checked for
errors, memory growth and leaked temporary files. Latency figures are printed, not asserted
(see docs/performance/holding-up.md)."""

import re
import subprocess
import sys

import pytest
from conftest import HAVE_SHARED_DATA, ROOT

pytestmark = [pytest.mark.slow]


def run_script(name: str, *args: str, timeout: int) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(re.findall(r"^(\w+): (.*)$", result.stdout, flags=re.M))


@pytest.mark.skipif(not HAVE_SHARED_DATA, reason="the load test sends distinct real photos from ../shared/data")
def test_sixteen_concurrent_clients_get_no_errors_and_memory_holds():
    figures = run_script("load_test.py", "--clients", "16", "--calls", "25", timeout=1200)
    assert figures["load_errors"] == "0"
    assert float(figures["rss_growth"].split()[0]) < 10.0


@pytest.mark.skipif(not HAVE_SHARED_DATA, reason="the load test sends distinct real photos from ../shared/data")
def test_two_model_workers_serve_concurrent_clients_without_errors(tmp_path):
    log = tmp_path / "app.log"
    figures = run_script(
        "load_test.py", "--clients", "8", "--calls", "6", "--model-workers", "2", "--log", str(log), timeout=900
    )
    assert figures["load_errors"] == "0"
    assert re.search(r"2 model workers, \d+ torch threads each", log.read_text())
    assert figures["p95_vs_single"].split()[0].replace(".", "").isdigit()  # printed last, as the README says


def test_a_thousand_calls_mixing_good_and_bad_input_leak_nothing():
    figures = run_script("soak.py", "--calls", "1000", "--temp-ttl", "20", timeout=1500)
    assert figures["bad_inputs_not_refused_cleanly"] == "0" and figures["good_calls_failed"] == "0"
    assert float(figures["rss_growth"].split()[0]) < 10.0
    start, _, after = re.findall(r"\d+", figures["temp_files"])[:3]
    assert int(after) <= int(start), figures["temp_files"]  # every upload deleted after the TTL
    assert figures["soak_failures"] == "0"
