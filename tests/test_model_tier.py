"""The model tier on Ray Serve (python app.py --ray-serve): two replicas on a local Ray, reached through the
Gradio API the way a user calls it; the same answers as in one process, a user's mistake told the same way, and a
replica killed while sixteen calls are under way loses none of them."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest
from conftest import CORAL, HAVE_CORAL, SHARED_REASON

from explorer.services.identification import IdentifyRequest, identify_photo
from explorer.services.model_tier import APP_NAME, DEPLOYMENT
from explorer.ui.launcher import launched_app

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not HAVE_CORAL, reason=SHARED_REASON)]
PHOTOS = ["bird.bmp", "owl.jpg", "dragonfly.bmp", "cat.bmp"]


@pytest.fixture(scope="module")
def tier_url(tmp_path_factory):
    """The app on two replicas; stopped by SIGTERM after the module's tests, it must exit cleanly (status 0, no
    stack dump from Ray's signal handler) and leave no replica running."""
    log = tmp_path_factory.mktemp("tier") / "app.log"
    with launched_app(log, "--ray-serve", "--tier-replicas", "2") as (url, process):
        yield url, _ray_address(log)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert "SIGTERM received" not in log.read_text()
    deadline = threading.Event()
    for _ in range(40):  # the local Ray's processes end with the server (ray.shutdown), within seconds
        ps = subprocess.run(["ps", "-eo", "cmd"], capture_output=True, text=True).stdout
        if f"ServeReplica:{APP_NAME}" not in ps:
            break
        deadline.wait(0.5)
    assert f"ServeReplica:{APP_NAME}" not in ps


def _ray_address(log) -> str:
    """The app's Ray, as its log says (``model tier: N replicas of ModelTier on Ray at HOST:PORT``)."""
    found = re.search(r"model tier: \d+ replicas of \S+ on Ray at (\S+)", log.read_text())
    assert found, log.read_text()[-2000:]
    return found.group(1)


def _connect(address: str) -> None:
    """This process joins the app's Ray (leaving any other Ray an earlier test started here)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(address=address, log_to_driver=False)


@pytest.fixture(scope="module")
def client(tier_url):
    from gradio_client import Client

    return Client(tier_url[0], verbose=False)


def _call(client, photo: str, **kwargs) -> dict:
    from gradio_client import handle_file

    return client.predict(handle_file(str(CORAL / photo)), api_name="/identify", **kwargs)


def _expected(real_resources, photo: str, **kwargs):
    return identify_photo(real_resources, IdentifyRequest((CORAL / photo).read_bytes(), **kwargs)).result


def _assert_same(got: dict, want) -> None:
    assert got["model"] == want.model
    assert [p["class_index"] for p in got["predictions"]] == [p.class_index for p in want.predictions]
    for p, q in zip(got["predictions"], want.predictions):
        assert p["probability"] == pytest.approx(q.probability, abs=1e-3)
    assert got["rollup"]["text"] == want.rollup.text


@pytest.mark.parametrize("photo", PHOTOS)
def test_the_tier_answers_as_one_process_does(client, real_resources, photo):
    got = _call(client, photo, top_k=3, model="auto", lat=43.65, lon=-79.38, date="2021-05-16")
    _assert_same(got, _expected(real_resources, photo, top_k=3, model="auto", lat=43.65, lon=-79.38, date="2021-05-16"))
    assert got.get("routed_from") == "auto"


def test_a_users_mistake_is_told_as_in_one_process(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"just some text")
    with pytest.raises(AppError, match="not an image we can read"):
        client.predict(handle_file(str(bad)), api_name="/identify")
    with pytest.raises(AppError, match="unknown or unavailable model 'nope'"):
        _call(client, "bird.bmp", model="nope")
    assert _call(client, "owl.jpg", top_k=1)["predictions"][0]["scientific_name"] == "Athene cunicularia"


def test_a_replica_killed_under_load_loses_no_call(client, tier_url, real_resources):
    """Sixteen calls from sixteen clients; one replica is killed once the first answer is back: every call still
    gets its full answer (a lost call is sent once more, to the replica that lives), and Serve starts a new one."""
    import ray
    from gradio_client import Client

    wanted = {p: _expected(real_resources, p, top_k=3, model="auto") for p in PHOTOS}
    url, address = tier_url
    clients = [Client(url, verbose=False) for _ in range(16)]
    out: list = [None] * 16
    first = threading.Event()

    def run(i: int) -> None:
        try:
            out[i] = ("ok", _call(clients[i], PHOTOS[i % 4], top_k=3, model="auto"))
        except Exception as err:  # noqa: BLE001 (the test reads it)
            out[i] = ("error", err)
        first.set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    _connect(address)
    try:
        replicas = _replicas()
        assert len(replicas) == 2
        for thread in threads:
            thread.start()
        assert first.wait(120)
        ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=False)
        for thread in threads:
            thread.join(300)
        assert [status for status, _ in out] == ["ok"] * 16, out
        for i, (_status, got) in enumerate(out):
            _assert_same(got, wanted[PHOTOS[i % 4]])
        _until_two_replicas_again(replicas[0])
    finally:
        ray.shutdown()


def _replicas() -> list[str]:
    import ray

    prefix = f"SERVE_REPLICA::{APP_NAME}#{DEPLOYMENT}#"
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix))


def _until_two_replicas_again(killed: str) -> None:
    import time

    deadline = time.monotonic() + 180
    while not (len(now := _replicas()) == 2 and killed not in now):
        assert time.monotonic() < deadline, f"Serve did not replace the killed replica: {now}"
        threading.Event().wait(1)


def test_a_second_front_end_attaches_to_the_running_tier(tier_url, real_resources):
    """Another front end given the cluster's address (here this test, with --ray-address HOST:PORT from the app's
    log) shares the running replicas instead of deploying its own: the same answer, and still two replicas."""
    import signal

    import ray

    from explorer.services.model_tier import start_model_tier
    from explorer.settings import parse_settings

    before = signal.getsignal(signal.SIGTERM)
    try:
        if ray.is_initialized():
            ray.shutdown()
        tier = start_model_tier(parse_settings(["--ray-address", tier_url[1]]))
        replicas = _replicas()
        found = tier.identify(IdentifyRequest((CORAL / "owl.jpg").read_bytes(), top_k=3, model="auto"))
        want = _expected(real_resources, "owl.jpg", top_k=3, model="auto")
        assert found.result.model == want.model
        assert [p.class_index for p in found.result.predictions] == [p.class_index for p in want.predictions]
        assert _replicas() == replicas and len(replicas) == 2
    finally:
        signal.signal(signal.SIGTERM, before)
        ray.shutdown()


def test_a_cluster_address_that_does_not_answer_is_told_at_once_before_the_models_load():
    """No minutes of Ray's own retries: one line, exit status 2, in seconds (port 1 refuses at once)."""
    import time

    from conftest import ROOT

    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "app.py", "--ray-address", "127.0.0.1:1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and time.monotonic() - start < 30
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("python app.py: error: cannot reach the Ray cluster at 127.0.0.1:1")
    )
    done = subprocess.run(
        [sys.executable, "app.py", "--ray-address", "nonsense"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "--ray-address takes HOST:PORT (e.g. HEAD:6379) or 'auto', got 'nonsense'" in done.stderr
