import time
from pathlib import Path

import pytest

from lemoe import cli, experiment
from lemoe.config import ExperimentConfig
from shared_utils.config import diff_configs, flatten_config, load_config, packaged_configs
from shared_utils.records import require_local

SHIPPED = packaged_configs("lemoe")
REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_configs_are_inside_the_package():
    assert {"default", "tiny", "zsre_t100", "paper/llama2_7b_zsre_t1000", "paper/mistral_7b_zsre_t1000"} <= set(SHIPPED)


def test_dataclass_defaults_equal_the_shipped_default_config():
    assert diff_configs(load_config(ExperimentConfig, "default", package="lemoe"), ExperimentConfig()) == []
    # the values the committed results were made with (README), not the paper's
    cfg = ExperimentConfig()
    assert (cfg.lemoe.adaptor.layer, cfg.lemoe.train.lr, cfg.lemoe.train.early_stop_loss) == (25, 1e-2, 0.05)
    assert (cfg.lemoe.router.null_threshold, cfg.output_dir, cfg.readme) == ("activation", "runs/lemoe", None)


def test_edit_help_shows_the_defaults_that_run(capsys):
    with pytest.raises(SystemExit):
        cli.main(["edit", "--help"])
    out = capsys.readouterr().out
    for key, value in flatten_config(ExperimentConfig()).items():
        assert f"--{key} (default: {value!r})" in out, key
    assert "{kv_anchor, token}" in out  # choices are listed


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_config_loads_and_writes_only_under_runs(name):
    cfg = load_config(ExperimentConfig, name, package="lemoe")  # unknown keys, types or choices raise
    assert cfg.output_dir.startswith("runs/lemoe"), cfg.output_dir
    assert cfg.readme is None  # README tables are regenerated only when asked (make reproduce-lemoe)
    if cfg.data != "builtin":  # the shared benchmark samples, found from any working directory
        assert cfg.data.startswith("shared:knowledge-editing/"), cfg.data
        # the CPU configs run on the shared samples; the paper configs need the full MEND file
        if not name.startswith("paper/") and (REPO.parent / "shared").exists():
            assert require_local(cfg.data).is_file(), cfg.data


def test_a_choice_typo_fails_in_one_line_before_any_data_or_model_is_touched(monkeypatch, capsys):
    monkeypatch.setattr(experiment, "load_edits", lambda *a, **k: pytest.fail("data was loaded"))
    monkeypatch.setattr(experiment, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    start = time.perf_counter()
    assert cli.main(["edit", "--lemoe.router.mode", "tokn"]) == 2
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err.strip()
    assert err == "lemoe: error: option 'lemoe.router.mode' must be one of ['kv_anchor', 'token'], got 'tokn'"
    assert cli.main(["edit", "--methods", "[lemoe, ftl]"]) == 2
    assert "option 'methods[1]' must be one of ['lemoe'," in capsys.readouterr().err


def test_a_choice_set_in_python_is_checked_too():
    from lemoe.config import RouterConfig
    from shared_utils.errors import ConfigError

    with pytest.raises(ConfigError, match=r"RouterConfig\.null_threshold must be one of"):
        RouterConfig(null_threshold="calibrate")
    with pytest.raises(ConfigError, match=r"unknown methods \['ftl'\]"):
        ExperimentConfig(methods=["lemoe", "ftl"])
