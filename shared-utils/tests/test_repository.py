"""Checks of the monorepo wiring (CI workflows, .ci/run, Makefile) that no runner exercises here."""

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ["shared-utils", "lemoe", "distill-hetero", "semantic-peft", "infodiffusion"]
WORKFLOWS = REPO / ".github" / "workflows"

pytestmark = pytest.mark.skipif(not WORKFLOWS.is_dir(), reason="not running from a repository checkout")


def _load(pkg):
    data = yaml.safe_load((WORKFLOWS / f"{pkg}.yml").read_text())
    # YAML 1.1 reads the bare key `on` as True
    return data, data.get("on", data.get(True))


@pytest.mark.parametrize("pkg", PACKAGES)
def test_workflow_triggers_on_its_package_and_shared_utils(pkg):
    _, triggers = _load(pkg)
    for event in ("push", "pull_request"):
        paths = triggers[event]["paths"]
        assert f"{pkg}/**" in paths and "shared-utils/**" in paths
        assert f".github/workflows/{pkg}.yml" in paths
    assert triggers["push"]["branches"] == ["main"]
    assert "schedule" in triggers and "workflow_dispatch" in triggers


@pytest.mark.parametrize("pkg", PACKAGES)
def test_workflow_calls_the_package_jobs_with_its_name(pkg):
    data, _ = _load(pkg)
    call = data["jobs"]["package"]
    assert call["uses"] == "./.github/workflows/package.yml"
    assert call["with"]["package"] == pkg
    assert call["with"]["gpu-run"] == (f"make reproduce-{pkg}" if pkg != "shared-utils" else "make bench-shared-utils")


def test_package_jobs_cpu_torch_and_trusted_gpu_running_gpu_tests():
    data = yaml.safe_load((WORKFLOWS / "package.yml").read_text())
    cpu, gpu = data["jobs"]["cpu"], data["jobs"]["gpu"]
    assert any(step.get("run") == "make test-${{ inputs.package }}" for step in cpu["steps"])
    assert cpu["env"]["TORCH_INDEX"].endswith("/whl/cpu")  # not the multi-GB CUDA build
    assert "TORCH_INDEX" in (REPO / "Makefile").read_text()
    assert gpu["runs-on"] == ["self-hosted", "linux", "gpu"]
    assert gpu["if"] == "github.event_name != 'pull_request'"
    runs = [step.get("run", "") for step in gpu["steps"]]
    # -m gpu with no gpu-marked test exits 5 and fails the job: no "|| [ $? -eq 5 ]" escape
    assert 'make test-${{ inputs.package }} PYTEST_ARGS="-m gpu"' in runs
    assert not any("-eq 5" in run for run in runs)


def test_lint_workflow_runs_make_lint_and_actionlint_knows_the_gpu_label():
    data = yaml.safe_load((WORKFLOWS / "lint.yml").read_text())
    assert any(step.get("run") == "make lint" for step in data["jobs"]["lint"]["steps"])
    assert "actionlint" in (REPO / "Makefile").read_text().split("\nlint:")[1].split("\n\n")[0]
    config = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())
    assert "gpu" in config["self-hosted-runner"]["labels"]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_package_has_gpu_marked_tests(pkg):
    """The GPU job runs `-m gpu`; a package without such tests would make it run nothing (exit 5)."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "-p", "no:cacheprovider"],
        cwd=REPO / pkg,
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled", "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"[1-9]\d*(/\d+)? tests? collected", done.stdout), done.stdout[-500:]


def _normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def test_constraints_hold_exactly_what_the_venv_has():
    """constraints.txt lists every distribution `make setup` installed into .venv, and nothing else."""
    if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
        pytest.skip("not running in the repository's .venv")
    ours = {"shared-utils", "lemoe", "distill-hetero", "semantic-peft", "infodiffusion"}
    installed = {_normalise(d.metadata["Name"]) for d in metadata.distributions()} - ours
    lines = [line.split("#")[0].strip() for line in (REPO / "constraints.txt").read_text().splitlines()]
    pinned = {_normalise(line.split("==")[0]) for line in lines if "==" in line}
    assert sorted(installed - pinned) == [], "installed but not pinned"
    assert sorted(pinned - installed) == [], "pinned but nothing installs it"


def test_other_packages_do_not_trigger_each_other():
    _, triggers = _load("lemoe")
    siblings = ("infodiffusion", "semantic-peft", "distill-hetero")
    assert not any(path.startswith(siblings) for path in triggers["push"]["paths"])


def test_ci_entry_point_runs_the_readme_test_command():
    commands = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert commands == ["make test", "make check-install"]
    assert "make test" in (REPO / "README.md").read_text()


def test_makefile_has_a_target_per_package():
    makefile = (REPO / "Makefile").read_text()
    for target in ("setup:", "test:", "lint:", "clean:"):
        assert f"\n{target}" in makefile
    for pkg in PACKAGES[1:]:
        mk = (REPO / pkg / "package.mk").read_text()
        assert f"reproduce-{pkg}:" in mk and f"bench-{pkg}:" in mk
