"""Start-up: every usable card loaded once; a missing file makes a model unavailable, with the reason."""

import pytest
from conftest import write_tiny_checkpoint

from explorer.services.resources import load_resources
from explorer.settings import Settings


def test_resources_skip_unavailable_models(tmp_path):
    write_tiny_checkpoint(tmp_path, name="present")
    gone = write_tiny_checkpoint(tmp_path, name="absent")
    (tmp_path / "absent.safetensors").unlink()
    resources = load_resources(Settings(checkpoint_dir=tmp_path))
    assert list(resources.classifiers) == ["present"] and list(resources.unavailable) == ["absent"]
    assert "absent.safetensors not found" in resources.unavailable["absent"]
    with pytest.raises(ValueError, match=r"unavailable model 'absent' \(absent.safetensors not found"):
        resources.get("absent")
    assert resources.default_model == "present" and resources.get(None).name == "present"
    assert gone.is_file()  # the card itself is still there: the model is unavailable, not forgotten
