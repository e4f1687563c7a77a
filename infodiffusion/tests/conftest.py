import os
from pathlib import Path

import pytest

from shared_utils.records import shared_data_root

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY = {
    "model.embedding_dim": "16",
    "model.hidden_size": "32",
    "model.num_layers": "2",
    "model.num_heads": "4",
    "model.intermediate_size": "64",
    "model.dropout": "0.0",
    "diffusion.steps": "50",
    "data.seq_len": "32",
    "data.max_train": "64",
    "data.max_eval": "4",
    "train.steps": "4",
    "train.batch_size": "8",
    "train.warmup_steps": "1",
    "train.tracker": "none",
    "train.log_every": "1",
    "sample.steps": "5",
    "sample.candidates": "2",
    "sample.batch_size": "4",
    "eval.mbr_quality": "2",
    "eval.mbr_diversity": "2",
}


@pytest.fixture
def tiny_overrides():
    return dict(TINY)


@pytest.fixture
def shared_data() -> Path:
    root = shared_data_root("INFODIFFUSION_SHARED_DATA")
    if root is None or not (root / "seq2seq").is_dir():
        pytest.skip(f"shared benchmark samples not found at {root} (set INFODIFFUSION_SHARED_DATA)")
    return root
