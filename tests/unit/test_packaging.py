"""What installing dmcodec asks of a user's environment, and what CI pins."""

from __future__ import annotations

import subprocess
import sys

import tomllib
import torch
from helpers import REPO
from packaging.requirements import Requirement


def test_the_library_asks_for_a_torch_range_and_ci_pins_the_version_it_tests():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch_requirement = next(Requirement(r) for r in project["dependencies"] if r.startswith("torch"))
    assert not any(spec.operator in ("==", "===") for spec in torch_requirement.specifier)
    assert torch_requirement.specifier.contains("2.4.0") and torch_requirement.specifier.contains("2.99")
    pins = [Requirement(line) for line in (REPO / "constraints.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    pinned = next(r for r in pins if r.name == "torch")
    assert torch.__version__.split("+")[0] in pinned.specifier  # this run uses the pinned version
    assert torch_requirement.specifier.contains(next(iter(pinned.specifier)).version)
    for script in ("scripts/test.sh", "scripts/serve.sh", "docker/install.sh"):
        assert "constraints.txt" in (REPO / script).read_text(), script


def test_the_shared_test_helpers_load_with_the_library_alone():
    """The service, bulk and HTTP extras made unimportable: the helpers and fixtures the
    library's unit tests use still load (each extra is imported by the helper that needs it)."""
    extras = ["dmcodec_service", "dmcodec_train", "dmcodec.bulk", "fastapi", "httpx", "pyarrow", "prometheus_client",
              "ray", "onnxruntime"]
    code = (f"import sys\nfor name in {extras!r}:\n    sys.modules[name] = None\n"
            "sys.path.insert(0, 'tests')\nimport conftest, helpers\n"
            "from dmcodec import Tokenizer\n"
            "print(helpers.clips([0.5])[0].shape)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(8000,)"
