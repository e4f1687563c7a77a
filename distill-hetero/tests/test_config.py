"""The shipped configs: the default equals the dataclass defaults and --help; choice typos fail early."""

import time

import pytest

from distill_hetero import cli
from distill_hetero.config import PACKAGE, LossConfig, RunConfig
from shared_utils.config import diff_configs, load_config, packaged_configs
from shared_utils.errors import ConfigError


def test_shipped_default_equals_the_dataclass_defaults_but_the_teacher_specific_lists():
    # the shipped default picks blocks and pairs for the embedded SmolLM2 teacher; the library's defaults,
    # meant for any teacher, keep evenly spaced blocks with the uniform mapping (README, "Default run")
    diffs = diff_configs(load_config(RunConfig, "default", package=PACKAGE), RunConfig())
    assert [key for key, _, _ in diffs] == ["mapping.pairs", "mapping.rule", "student.keep_blocks"], diffs


def test_help_shows_the_defaults_the_run_uses(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    default = load_config(RunConfig, "default", package=PACKAGE)
    for option, value in [
        ("num_threads", default.num_threads),
        ("loss.intermediate", default.loss.intermediate),
        ("loss.weighting", default.loss.weighting),
        ("train.lr", default.train.lr),
        ("train.keep_last", default.train.keep_last),
    ]:
        assert f"--{option} (default: {value!r})" in out
    assert "--loss.weighting (default: 'uncertainty') {fixed, uncertainty, dwa}" in out
    assert "default, paper/gpt2xl-gpt2base-dolly" in " ".join(out.split())  # --config lists the shipped ones


def test_every_shipped_config_loads_by_name():
    names = packaged_configs(PACKAGE)
    assert {"default", "tiny", "paper/gpt2xl-gpt2base-dolly", "paper/qwen1.5-1.8b-to-gpt2-dolly"} <= set(names)
    for name in names:
        if not name.startswith("accelerate/"):  # accelerate launch configs, not run configs
            load_config(RunConfig, name, package=PACKAGE)


def test_choice_typo_fails_in_one_line_before_any_model_is_loaded(monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("the teacher was loaded before the config was checked")

    monkeypatch.setattr("distill_hetero.models.load_teacher", no_model)
    start = time.perf_counter()
    code = cli.main(["train", "--loss.projector", "mpl"])
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "distill-hetero: error: option 'loss.projector' must be one of ['linear', 'mlp'], got 'mpl'"


def test_choices_are_checked_for_configs_built_in_python():
    with pytest.raises(ValueError, match=r"LossConfig\.weighting must be one of \['fixed', 'uncertainty', 'dwa'\]"):
        LossConfig(weighting="learned")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dwa_temperature": 0.0}, "option loss.dwa_temperature must be > 0, got 0.0"),
        ({"dwa_window": 0}, r"option loss.dwa_window must be >= 1 step, got 0"),
        ({"weighting": "dwa", "weights": {"inter": 2.0}}, "loss.weighting=dwa sets every ratio itself"),
    ],
)
def test_dwa_options_are_checked(options, message):
    with pytest.raises(ConfigError, match=message):
        LossConfig(**options)
