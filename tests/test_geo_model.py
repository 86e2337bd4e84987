"""The geo-prior's encoding, model and checkpoints."""

import numpy as np
import pytest
import torch

from explorer.geo.range_model import encode, load_geo_prior, presence, save_geo_prior


def test_encoding_wraps_longitude_and_marks_missing_dates():
    features = encode(np.array([10.0, 10.0]), np.array([-180.0, 180.0]), np.array([np.nan, 100.0]))
    assert features.shape == (2, 7)
    assert torch.allclose(features[0, :4], features[1, :4], atol=1e-6)  # -180 and 180 are the same meridian
    assert features[0, 6] == 0 and features[1, 6] == 1 and features[0, 4:6].abs().sum() == 0


def test_checkpoint_round_trip(tiny_world, tmp_path):
    path = save_geo_prior(tiny_world, ["Alpha one", "Beta two"], tmp_path / "g.safetensors", {"held_out_map": 0.5})
    model, taxa, metrics = load_geo_prior(path)
    assert taxa == ["Alpha one", "Beta two"] and metrics["held_out_map"] == 0.5
    lat, lon = np.array([50.0]), np.array([10.0])
    assert np.allclose(presence(model, lat, lon), presence(tiny_world, lat, lon), atol=1e-6)


def test_not_a_geo_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a geo-prior checkpoint"):
        load_geo_prior(tmp_path / "x.safetensors")
