from pathlib import Path

import pytest

from lemoe.adaptor import NULL_GATES
from lemoe.config import ExperimentConfig
from lemoe.experiment import METHODS
from shared_utils.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_load_and_name_known_options(path):
    cfg = load_config(ExperimentConfig, path)  # unknown keys or wrong types raise ConfigError
    assert set(cfg.methods) <= set(METHODS), cfg.methods
    assert cfg.lemoe.router.null_threshold in NULL_GATES and cfg.lemoe.router.pooling in ("prompt", "subject")
    if cfg.data != "builtin":  # local data paths are relative to the repository root
        assert cfg.data.startswith("../shared/data/knowledge-editing/"), cfg.data
    # the CPU configs run here, on the shared samples; the paper configs need the full MEND file
    if path.parent.name != "paper" and cfg.data != "builtin" and (REPO.parent / "shared").exists():
        assert (REPO / cfg.data).exists(), cfg.data


def test_configs_were_found():
    assert {p.stem for p in CONFIGS} >= {"default", "zsre_t20", "llama2_7b_zsre_t1000", "mistral_7b_zsre_t1000"}
