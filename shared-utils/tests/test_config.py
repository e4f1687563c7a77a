from dataclasses import dataclass, field

import pytest

from shared_utils.config import ConfigError, describe_config, dump_config, load_config, parse_config_cli


@dataclass
class Router:
    top_k: int = 1
    threshold: float | None = None


@dataclass
class Experiment:
    lr: float = 2e-4
    steps: int = 10
    name: str = "default"
    use_cache: bool = False
    layers: list[int] = field(default_factory=lambda: [1, 2])
    router: Router = field(default_factory=Router)


@pytest.fixture
def yaml_file(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("lr: 0.001\nsteps: 50\nrouter:\n  top_k: 2\n")
    return path


def test_defaults_when_nothing_given():
    cfg = load_config(Experiment)
    assert cfg == Experiment()


def test_cli_beats_yaml_beats_defaults(yaml_file):
    cfg = load_config(Experiment, yaml_file, ["--steps", "7", "--router.threshold=0.5", "--use_cache"])
    assert cfg.lr == 0.001  # from YAML
    assert cfg.steps == 7  # CLI over YAML
    assert cfg.name == "default"  # default
    assert cfg.router.top_k == 2  # YAML, nested
    assert cfg.router.threshold == 0.5  # CLI, nested
    assert cfg.use_cache is True


def test_values_are_coerced_to_field_types():
    cfg = load_config(Experiment, None, ["--lr", "1e-4", "--layers", "[3, 4]", "--router.threshold", "none"])
    assert cfg.lr == pytest.approx(1e-4) and isinstance(cfg.lr, float)
    assert cfg.layers == [3, 4]
    assert cfg.router.threshold is None


def test_unknown_yaml_key_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: 0.1\nlearning_rate: 0.2\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        load_config(Experiment, path)


def test_unknown_cli_key_is_named_with_its_section():
    with pytest.raises(ConfigError, match=r"router\.topk"):
        load_config(Experiment, None, ["--router.topk", "2"])


def test_wrong_type_names_the_option():
    with pytest.raises(ConfigError, match="'steps' expects int"):
        load_config(Experiment, None, ["--steps", "many"])


def test_dump_round_trips(tmp_path, yaml_file):
    cfg = load_config(Experiment, yaml_file, ["--name", "x"])
    out = tmp_path / "resolved.yaml"
    dump_config(cfg, out)
    assert load_config(Experiment, out) == cfg


def test_parse_config_cli_and_help_text(yaml_file):
    cfg = parse_config_cli(Experiment, ["--config", str(yaml_file), "--steps", "3"])
    assert (cfg.lr, cfg.steps) == (0.001, 3)
    assert "--router.top_k (default: 1)" in describe_config(Experiment)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Experiment, tmp_path / "nope.yaml")
