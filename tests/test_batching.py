"""Batched model calls (--max-batch): concurrent calls of one model and CAM method share one forward pass, each call
gets its own answer (equal to one at a time), one call's failure stays its own, and a call inside a held worker
runs alone."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time

import numpy as np
import pytest
from conftest import HAVE_CORAL, SHARED_REASON
from PIL import Image

from explorer.identify.answer import IdentifyJob, identify, identify_many
from explorer.services.batching import Batcher
from explorer.services.identification import IdentifyRequest, identify_photo
from explorer.services.resources import Resources
from explorer.services.workers import ModelWorkers
from explorer.settings import Settings, parse_settings


def _until(condition, timeout: float = 10.0) -> None:
    """Wait for ``condition()`` (another thread's progress), failing after ``timeout`` seconds."""
    deadline, tick = time.monotonic() + timeout, threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        tick.wait(0.002)


class _Gate:
    """A slot the test holds closed, so that the calls it starts gather while the first waits for it."""

    def __init__(self):
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self):
        with self.lock:
            yield


def _start(calls) -> tuple[list, list[threading.Thread]]:
    out: list = [None] * len(calls)

    def runner(i, fn):
        try:
            out[i] = ("ok", fn())
        except Exception as err:  # noqa: BLE001 (the test reads it)
            out[i] = ("error", err)

    threads = [threading.Thread(target=runner, args=(i, fn)) for i, fn in enumerate(calls)]
    return out, threads


def _gathered(batcher: Batcher, gate: _Gate, key, items, run, joined: int):
    """Run ``items`` as concurrent calls while the gate is closed; open it once ``joined`` calls wait in batches."""
    out, threads = _start([lambda item=item: batcher.call(key, item, run) for item in items])
    with gate.lock:
        threads[0].start()
        _until(lambda: batcher.waiting(key) == 1)  # the first is the leader, waiting for the worker
        for thread in threads[1:]:
            thread.start()
        _until(lambda: batcher.pending() == joined)
    for thread in threads:
        thread.join(10)
    return out


def test_calls_that_arrive_while_the_worker_is_busy_make_one_batch_and_each_gets_its_own_result():
    gate, seen = _Gate(), []
    batcher = Batcher(gate, max_batch=8)

    def run(items):
        seen.append(list(items))
        return [10 * i for i in items]

    out = _gathered(batcher, gate, "m", [1, 2, 3, 4], run, joined=4)
    assert seen == [[1, 2, 3, 4]] and list(batcher.sizes) == [4]
    assert out == [("ok", 10), ("ok", 20), ("ok", 30), ("ok", 40)]


def test_a_batch_holds_at_most_max_batch_calls():
    gate, seen = _Gate(), []
    batcher = Batcher(gate, max_batch=2)
    out = _gathered(batcher, gate, "m", [1, 2, 3, 4, 5], lambda items: seen.append(items) or items, joined=5)
    assert sorted(len(s) for s in seen) == [1, 2, 2] and sorted(x for s in seen for x in s) == [1, 2, 3, 4, 5]
    assert [r for _, r in out] == [1, 2, 3, 4, 5]


def test_one_call_that_fails_fails_alone():
    gate = _Gate()
    batcher = Batcher(gate, max_batch=8)

    def run(items):
        if "bad" in items:
            raise ValueError("this photo cannot be read")
        return [f"{i}!" for i in items]

    out = _gathered(batcher, gate, "m", ["a", "bad", "c"], run, joined=3)
    assert list(batcher.sizes) == [3]  # tried together, then each alone
    assert out[0] == ("ok", "a!") and out[2] == ("ok", "c!")
    assert out[1][0] == "error" and str(out[1][1]) == "this photo cannot be read"


def test_a_lone_call_waits_for_nothing_and_a_call_inside_a_held_worker_runs_alone(tiny_classifier):
    workers = ModelWorkers({"tiny": tiny_classifier}, 1)
    batcher = Batcher(workers.slot, max_batch=8, wait_s=0.0)
    assert batcher.call("m", 3, lambda items: [i + 1 for i in items]) == 4
    with workers.slot():  # a use case holding the only worker calls another: it must not wait for itself
        assert batcher.call("m", 5, lambda items: [i + 1 for i in items]) == 6
    assert list(batcher.sizes) == [1, 1]
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        Batcher(workers.slot, max_batch=0)


def test_the_flags_set_the_batch(capsys):
    assert (parse_settings([]).max_batch, parse_settings([]).batch_wait_ms) == (8, 0.0)
    chosen = parse_settings(["--max-batch", "1", "--batch-wait-ms", "2.5"])
    assert (chosen.max_batch, chosen.batch_wait_ms) == (1, 2.5)
    with pytest.raises(SystemExit):
        parse_settings(["--batch-wait-ms", "-1"])
    assert "--batch-wait-ms: expected a number >= 0, got '-1'" in capsys.readouterr().err


def _photos(count: int, seed: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (60 + 6 * i, 72, 3), dtype=np.uint8)) for i in range(count)]


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "xgradcam", "layercam", "hirescam", None])
@pytest.mark.parametrize("head", [False, True])
def test_identify_many_gives_each_photo_its_one_at_a_time_answer(tiny_classifier, method, head):
    """With the tiny CNN's GAP + linear head declared (no backward pass) or not (one batched backward for every
    photo's top-k): the same classes, probabilities, CAMs and embeddings as one photo at a time. (EigenCAM is not
    batched: services.identification.UNBATCHED.)"""
    classifier = tiny_classifier
    if head:
        classifier = dataclasses.replace(classifier, card=dataclasses.replace(classifier.card, cam_head="classifier"))
    photos = _photos(4)
    jobs = [IdentifyJob(p, top_k=k, threshold=0.5, cam_method=method) for p, k in zip(photos, [3, 1, 4, 2])]
    together = identify_many(classifier, jobs)
    for job, got in zip(jobs, together):
        alone = identify(classifier, job.image, job.top_k, job.threshold, method)
        assert [p.class_index for p in got.predictions] == [p.class_index for p in alone.predictions]
        np.testing.assert_allclose(
            [p.probability for p in got.predictions], [p.probability for p in alone.predictions], atol=1e-6
        )
        assert got.cams.shape == alone.cams.shape == ((job.top_k, 16, 16) if method else (job.top_k, 0, 0))
        np.testing.assert_allclose(got.cams, alone.cams, atol=1e-5)
        np.testing.assert_allclose(got.embedding, alone.embedding, atol=1e-5)
    with pytest.raises(ValueError, match="share one CAM method"):
        identify_many(
            classifier, [IdentifyJob(photos[0], cam_method="gradcam"), IdentifyJob(photos[1], cam_method=None)]
        )


def test_concurrent_identify_calls_share_one_forward_pass_and_equal_single_calls(tiny_classifier, tmp_path):
    paths = []
    for i, photo in enumerate(_photos(6, seed=11)):
        paths.append(str(tmp_path / f"p{i}.png"))
        photo.save(paths[-1])
    settings = Settings(checkpoint_dir=tmp_path)
    requests = [IdentifyRequest(photo=p, model="tiny", top_k=3, threshold=0.5, cam_method="gradcam") for p in paths]
    alone = Resources({"tiny": tiny_classifier}, settings=settings)
    expected = [identify_photo(alone, r).result for r in requests]
    workers = ModelWorkers({"tiny": tiny_classifier}, 1)
    batcher = Batcher(workers.slot, max_batch=8)
    shared = Resources({"tiny": tiny_classifier}, settings=settings, workers=workers, batcher=batcher)
    out, threads = _start([lambda r=r: identify_photo(shared, r).result for r in requests])
    holder_in, holder_out = threading.Event(), threading.Event()

    def hold():  # the worker busy (another batch running) while the six calls arrive
        with workers.slot():
            holder_in.set()
            holder_out.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holder_in.wait(10)
    for thread in threads:
        thread.start()
    _until(lambda: batcher.waiting(("tiny", "gradcam")) == 6)
    holder_out.set()
    for thread in threads:
        thread.join(30)
    assert list(batcher.sizes) == [6]
    for (status, got), want in zip(out, expected):
        assert status == "ok"
        assert [p.class_index for p in got.predictions] == [p.class_index for p in want.predictions]
        np.testing.assert_allclose(got.cams, want.cams, atol=1e-5)


@pytest.mark.skipif(not HAVE_CORAL, reason=SHARED_REASON)
def test_the_real_models_batched_answer_equals_one_at_a_time(real_resources, photo_rgb):
    """inat_bird (a Coral MobileNetV2 with its linear head) and cub100_effnet_head (EfficientNet-Lite0, a backward
    pass): four photos together give each the classes, probabilities and Grad-CAMs it gets alone."""
    photos = [
        photo_rgb,
        *(photo_rgb.rotate(angle, expand=True) for angle in (90, 180)),
        photo_rgb.crop((0, 0, 200, 150)),
    ]
    for name in ("inat_bird", "cub100_effnet_head"):
        if name not in real_resources.classifiers:
            continue
        classifier = real_resources.classifiers[name]
        jobs = [IdentifyJob(p, top_k=5, cam_method="gradcam") for p in photos]
        for job, got in zip(jobs, identify_many(classifier, jobs)):
            alone = identify(classifier, job.image, 5, cam_method="gradcam")
            assert [p.class_index for p in got.predictions] == [p.class_index for p in alone.predictions], name
            np.testing.assert_allclose(
                [p.probability for p in got.predictions], [p.probability for p in alone.predictions], atol=1e-4
            )
            np.testing.assert_allclose(got.cams, alone.cams, atol=1e-3)


def test_the_server_caps_mallocs_arenas_unless_told(monkeypatch):
    """glibc gives every allocating thread its own arena; the server caps them (mallopt) before its threads start,
    and leaves the cap to glibc when MALLOC_ARENA_MAX is set."""
    import sys

    from explorer.services.workers import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is sys.platform.startswith("linux")


def test_a_model_tier_batch_returns_each_calls_failure_as_its_own(tiny_classifier, tmp_path, monkeypatch):
    """A replica's batch of three calls (Serve fails a whole batch that raises): a good photo's answer, a text file's
    ValueError with the user's message, and another call's unexpected error as a RuntimeError naming it; the front
    end raises each call's own."""
    import asyncio

    import explorer.services.model_tier as model_tier

    good, bad = tmp_path / "p.png", tmp_path / "notes.png"
    _photos(1)[0].save(good)
    bad.write_bytes(b"just some text")
    tier = object.__new__(model_tier.ModelTier)
    tier.resources = Resources({"tiny": tiny_classifier}, settings=Settings(checkpoint_dir=tmp_path))
    real = model_tier.identify_photo

    def flaky(resources, request):
        if request.top_k == 2:
            raise KeyError("lost")
        return real(resources, request)

    monkeypatch.setattr(model_tier, "identify_photo", flaky)
    requests = [IdentifyRequest(str(p), model="tiny", top_k=k) for p, k in ((good, 3), (bad, 3), (good, 2))]
    answer, mistake, failure = asyncio.run(tier.identify_batch(requests))
    assert len(answer.result.predictions) == 3
    assert type(mistake) is ValueError and "not an image we can read" in str(mistake)
    assert type(failure) is RuntimeError and str(failure) == "the model server failed on this call: KeyError: 'lost'"

    class Handle:  # the front end's side, given what the replica returned
        def __init__(self, found):
            self.identify = self
            self.found = found

        def remote(self, _request):
            return self

        def result(self, timeout_s):
            return self.found

    with pytest.raises(RuntimeError, match="KeyError: 'lost'"):
        model_tier.RayTier(Handle(failure), 2, "").identify(requests[2])
    with pytest.raises(ValueError, match="not an image we can read"):
        model_tier.RayTier(Handle(mistake), 2, "").identify(requests[1])
    assert model_tier.RayTier(Handle(answer), 2, "").identify(requests[0]) is answer
