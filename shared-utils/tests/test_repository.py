"""Checks of the monorepo wiring (CI workflows, .ci/run, Makefile) that no runner exercises here."""

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
def test_workflow_jobs_cpu_and_trusted_gpu(pkg):
    data, _ = _load(pkg)
    cpu, gpu = data["jobs"]["cpu"], data["jobs"]["gpu"]
    assert any(f"make test-{pkg}" in step.get("run", "") for step in cpu["steps"])
    assert gpu["runs-on"] == ["self-hosted", "linux", "gpu"]
    assert gpu["if"] == "github.event_name != 'pull_request'"
    runs = " ".join(step.get("run", "") for step in gpu["steps"])
    assert "-m gpu" in runs
    assert (f"make reproduce-{pkg}" if pkg != "shared-utils" else "make bench-shared-utils") in runs


def test_other_packages_do_not_trigger_each_other():
    _, triggers = _load("lemoe")
    siblings = ("infodiffusion", "semantic-peft", "distill-hetero")
    assert not any(path.startswith(siblings) for path in triggers["push"]["paths"])


def test_ci_entry_point_runs_the_readme_test_command():
    run = (REPO / ".ci" / "run").read_text()
    assert "make test" in run.splitlines()[-1]
    assert "make test" in (REPO / "README.md").read_text()


def test_makefile_has_a_target_per_package():
    makefile = (REPO / "Makefile").read_text()
    for target in ("setup:", "test:", "lint:", "clean:"):
        assert f"\n{target}" in makefile
    for pkg in PACKAGES[1:]:
        mk = (REPO / pkg / "package.mk").read_text()
        assert f"reproduce-{pkg}:" in mk and f"bench-{pkg}:" in mk
