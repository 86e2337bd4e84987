"""Start-up: every usable card loaded once; a missing file makes a model unavailable, with the reason."""

import pytest
from conftest import write_tiny_checkpoint

from explorer.resources import load_resources
from explorer.settings import Settings


def test_resources_skip_unavailable_models(tmp_path):
    write_tiny_checkpoint(tmp_path, name="present")
    gone = write_tiny_checkpoint(tmp_path, name="absent")
    (tmp_path / "absent.safetensors").unlink()
    resources = load_resources(Settings(checkpoint_dir=tmp_path))
    assert list(resources.classifiers) == ["absent", "present"][1:]
    assert "absent.safetensors not found" in resources.unavailable["absent"]
    with pytest.raises(ValueError, match="unavailable model 'absent'"):
        resources.get("absent")
    assert gone.exists()
