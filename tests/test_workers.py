"""Model workers (--model-workers N): N model calls at once, each on its own copy of the models, so the forward
hooks of one call (CAM activations, embeddings) never read another call's activations."""

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.services.identification import IdentifyRequest, identify_photo
from explorer.services.resources import Resources
from explorer.services.workers import ModelWorkers, threads_per_worker
from explorer.settings import Settings, parse_settings


def test_each_worker_has_its_own_module_with_the_same_weights(tiny_classifier):
    workers = ModelWorkers({"tiny": tiny_classifier}, 3)
    modules = [models["tiny"].module for models in workers.sets]
    assert workers.count == 3 and len({id(m) for m in modules}) == 3
    assert modules[0] is tiny_classifier.module  # worker 0 serves the loaded classifiers
    for module in modules[1:]:
        for (name, ours), (_, theirs) in zip(module.state_dict().items(), modules[0].state_dict().items()):
            assert torch.equal(ours, theirs), name
    assert workers.sets[1]["tiny"].labels is tiny_classifier.labels  # the read-only parts are shared


def test_a_call_holds_a_free_worker_and_a_nested_call_keeps_it(tiny_classifier):
    workers = ModelWorkers({"tiny": tiny_classifier}, 2)
    assert workers.classifiers() is workers.sets[0]  # outside any call
    held, release, third = [], threading.Event(), []

    def call():
        with workers.slot() as index:
            with workers.slot() as nested:  # identify -> the scope gate, inside the same call
                held.append((index, nested, workers.classifiers() is workers.sets[index]))
                release.wait(10)

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    while len(held) < 2:
        threading.Event().wait(0.01)
    assert sorted(h[0] for h in held) == [0, 1] and all(i == n and same for i, n, same in held)
    waiting = threading.Thread(target=lambda: third.append(workers.slot().__enter__()))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and third == []  # both workers busy: the third call waits
    release.set()
    waiting.join(10)
    assert third[0] in (0, 1)


def test_threads_split_the_cores_between_workers():
    assert threads_per_worker(1, cores=16) == 16
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(3, cores=2) == 1
    with pytest.raises(ValueError, match=">= 1"):
        ModelWorkers({}, 0)


def test_the_flag_refuses_zero_workers_with_a_message(capsys):
    assert parse_settings(["--model-workers", "2"]).model_workers == 2
    assert parse_settings([]).model_workers == 1
    with pytest.raises(SystemExit):
        parse_settings(["--model-workers", "0"])
    assert "--model-workers: expected a whole number >= 1, got 0" in capsys.readouterr().err


def test_concurrent_calls_on_two_workers_give_each_photo_its_own_answer_and_cams(tiny_classifier, tmp_path):
    """Eight photos identified four at a time on two workers get exactly the answers and Grad-CAMs they get one at a
    time: with one shared module, a call's hooks would capture the other call's activations."""
    rng = np.random.default_rng(7)
    paths = []
    for i in range(8):
        path = tmp_path / f"p{i}.png"
        Image.fromarray(rng.integers(0, 255, (64 + 8 * i, 80, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    settings = Settings(checkpoint_dir=tmp_path)
    alone = Resources({"tiny": tiny_classifier}, settings=settings)
    requests = [IdentifyRequest(photo=p, model="tiny", top_k=3, threshold=0.5, cam_method="gradcam") for p in paths]
    expected = [identify_photo(alone, r).result for r in requests]
    shared = Resources({"tiny": tiny_classifier}, settings=settings, workers=ModelWorkers({"tiny": tiny_classifier}, 2))
    got: dict[int, object] = {}

    def run(indexes):
        for _ in range(5):
            for i in indexes:
                got[i] = identify_photo(shared, requests[i]).result
                want = expected[i]
                assert [p.class_index for p in got[i].predictions] == [p.class_index for p in want.predictions]
                np.testing.assert_allclose(got[i].cams, want.cams, atol=1e-5)
                np.testing.assert_allclose(got[i].embedding, want.embedding, atol=1e-5)

    threads = [threading.Thread(target=run, args=([i, i + 4],)) for i in range(4)]
    errors = []
    for thread in threads:
        thread.run = _catching(thread.run, errors)
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and sorted(got) == list(range(8))


def _catching(run, errors: list):
    def wrapped():
        try:
            run()
        except Exception as err:  # noqa: BLE001 (reported by the test's assertion)
            errors.append(err)

    return wrapped
