"""Evaluation engines: the local DataLoader pass and Ray Data give the same table."""

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED


@pytest.mark.shared_data
@pytest.mark.slow
def test_ray_engine_gives_the_same_table(real_resources, tmp_path):
    pytest.importorskip("ray")
    from explorer.diagnose.model_pass import evaluate
    from explorer.photos.manifests import read_manifest

    manifest = read_manifest(SHARED / "data" / "birds525-valid" / "manifest.csv").head(10)
    classifier = real_resources.get("inat_bird")
    local = evaluate(classifier, manifest, engine="local", batch_size=4, workers=0, progress=False)
    on_ray = evaluate(classifier, manifest, engine="ray", batch_size=4)
    floats = [c for c in local.columns if local[c].dtype.kind == "f"]
    others = [c for c in local.columns if c not in floats]
    pd.testing.assert_frame_equal(local[others], on_ray[others])
    np.testing.assert_allclose(local[floats].to_numpy(float), on_ray[floats].to_numpy(float), rtol=1e-5, atol=1e-6)
