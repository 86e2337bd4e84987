"""Evaluation engines: the local DataLoader pass and Ray Data give the same table."""

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED


@pytest.mark.shared_data
@pytest.mark.slow
def test_ray_engine_gives_the_same_table(real_resources, tmp_path):
    pytest.importorskip("ray")
    from explorer.photos.manifests import read_manifest

    manifest = read_manifest(SHARED / "data" / "birds525-valid" / "manifest.csv").head(10)
    classifier = real_resources.get("inat_bird")
    from explorer.diagnose.model_pass import evaluate_photos

    found = evaluate_photos(classifier, manifest, engine="local", batch_size=4, workers=0, progress=False, embed=True)
    try:
        found_ray = evaluate_photos(classifier, manifest, engine="ray", batch_size=4, embed=True)
    finally:
        import ray

        ray.shutdown()  # the local Ray it started, so that later tests start or join their own
    local, on_ray = found.table, found_ray.table
    assert found_ray.embeddings.vectors.shape == found.embeddings.vectors.shape == (10, 1280)  # the map, similar photos
    np.testing.assert_allclose(found_ray.embeddings.vectors, found.embeddings.vectors, rtol=1e-4, atol=1e-5)
    assert found_ray.embeddings.photo_ids.tolist() == found.embeddings.photo_ids.tolist()
    floats = [c for c in local.columns if local[c].dtype.kind == "f"]
    others = [c for c in local.columns if c not in floats]
    pd.testing.assert_frame_equal(local[others], on_ray[others])
    np.testing.assert_allclose(local[floats].to_numpy(float), on_ray[floats].to_numpy(float), rtol=1e-5, atol=1e-6)


def test_ray_data_puts_one_actor_on_each_gpu_and_one_on_the_cpu_without():
    from explorer.diagnose.ray_engine import actor_plan

    assert actor_plan({"CPU": 2.0, "memory": 1e10}) == {"actors": 1, "num_gpus": 0, "device": "cpu"}
    assert actor_plan({"CPU": 16.0, "GPU": 1.0}) == {"actors": 1, "num_gpus": 1, "device": "cuda"}
    assert actor_plan({"CPU": 64.0, "GPU": 4.0}) == {"actors": 4, "num_gpus": 1, "device": "cuda"}
