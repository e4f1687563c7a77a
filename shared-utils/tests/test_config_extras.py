"""Packaged configs, flattening and diffs, Literal choices, provenance of the code."""

import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal

import pytest

from shared_utils.config import (
    check_choices,
    describe_config,
    diff_configs,
    flatten_config,
    load_config,
    packaged_configs,
    resolve_config_path,
)
from shared_utils.errors import ConfigError
from shared_utils.results import git_commit, modified_code_files, require_clean_checkout


@dataclass
class Router:
    mode: Literal["kv_anchor", "token"] = "kv_anchor"
    top_k: int = 1

    def __post_init__(self):
        check_choices(self)


@dataclass
class Cfg:
    name: str = "x"
    router: Router = field(default_factory=Router)
    layers: tuple = (1, 2)


def test_literal_choice_is_checked_when_loading_and_in_python():
    with pytest.raises(ConfigError, match=r"option 'router.mode' must be one of \['kv_anchor', 'token'\], got 'tokn'"):
        load_config(Cfg, overrides=["--router.mode", "tokn"])
    with pytest.raises(ConfigError, match=r"Router.mode must be one of"):
        Router(mode="tokn")
    assert load_config(Cfg, overrides=["--router.mode", "token"]).router.mode == "token"
    assert "{kv_anchor, token}" in describe_config(Cfg)


def test_help_shows_the_defaults_a_default_factory_really_gives():
    @dataclass
    class Outer:
        router: Router = field(default_factory=lambda: Router(top_k=4))

    assert "--router.top_k (default: 4)" in describe_config(Outer)


def test_flatten_and_diff():
    flat = flatten_config(Cfg())
    assert flat == {"name": "x", "router.mode": "kv_anchor", "router.top_k": 1, "layers": [1, 2]}
    assert diff_configs(Cfg(), Cfg(router=Router(top_k=2))) == [("router.top_k", 1, 2)]


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    (pkg / "configs" / "paper").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "configs" / "default.yaml").write_text("name: shipped\nrouter:\n  top_k: 3\n")
    (pkg / "configs" / "paper" / "big.yaml").write_text("name: big\n")
    (pkg / "configs" / "accelerate").mkdir()
    (pkg / "configs" / "accelerate" / "fsdp.yaml").write_text("distributed_type: FSDP\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return pkg


def test_configs_shipped_in_a_package_are_found_by_name(fake_package, tmp_path):
    assert packaged_configs("fakepkg") == ["default", "paper/big"]
    assert resolve_config_path("fakepkg", "paper/big.yaml") == fake_package / "configs" / "paper" / "big.yaml"
    cfg = load_config(Cfg, "default", package="fakepkg")
    assert (cfg.name, cfg.router.top_k) == ("shipped", 3)
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\n")
    assert load_config(Cfg, str(own), package="fakepkg").name == "mine"
    with pytest.raises(
        ConfigError, match=r"'nope' is neither a file nor a config shipped with fakepkg \(default, paper/big\)"
    ):
        load_config(Cfg, "nope", package="fakepkg")


def test_invalid_yaml_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(Cfg, bad)


def _git(repo, *args):
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_dirty_means_code_not_results_or_readmes(tmp_path):
    repo = tmp_path / "repo"
    (repo / "results" / "pkg").mkdir(parents=True)
    (repo / "pkg").mkdir()
    for name in ("results/pkg/row.json", "pkg/README.md", "pkg/code.py"):
        (repo / name).write_text("v1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "init")
    (repo / "results/pkg/row.json").write_text("v2\n")
    (repo / "pkg/README.md").write_text("v2\n")
    assert modified_code_files(repo) == []
    assert not git_commit(repo).endswith("-dirty")
    require_clean_checkout(cwd=repo)
    (repo / "pkg/code.py").write_text("v2\n")
    assert modified_code_files(repo) == ["pkg/code.py"]
    assert git_commit(repo).endswith("-dirty")
    with pytest.raises(ConfigError, match=r"uncommitted changes \(pkg/code.py\)"):
        require_clean_checkout(cwd=repo)
    require_clean_checkout(allow_dirty=True, cwd=repo)
    outside = tmp_path / "outside"
    outside.mkdir()
    assert modified_code_files(outside) is None and git_commit(outside) is None


def test_unknown_model_name_lists_the_aliases(monkeypatch):
    from shared_utils.errors import ModelNotFound
    from shared_utils.models import load_causal_lm, resolve_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelNotFound,
        match=r"cannot load model 'no-such-model-xyz': not an embedded alias \(smollm2-135m-instruct, minilm-l6\)",
    ):
        load_causal_lm("no-such-model-xyz")
    with pytest.raises(ModelNotFound, match="does not exist"):
        resolve_model("some/local/folder")
    assert sys.modules.get("shared_utils.models") is not None
