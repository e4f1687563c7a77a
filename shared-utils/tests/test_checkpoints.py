from dataclasses import dataclass, field

import pytest

from shared_utils.checkpoints import CheckpointManager, ResumeMismatch, check_resume_config
from shared_utils.device import AcceleratorConfig, build_accelerator
from shared_utils.errors import ConfigError


@dataclass
class Train:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Run:
    data: str = "builtin"
    train: Train = field(default_factory=Train)


def test_keep_last_k_rotates_old_checkpoints(tmp_path):
    import torch

    accelerator = build_accelerator(AcceleratorConfig(tracker=None, cpu=True), log=False)
    model = accelerator.prepare(torch.nn.Linear(2, 2))
    del model
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (5, 10, 15, 20):
        manager.save(accelerator, step, lambda folder: (folder / "extra.txt").write_text("x"))
    assert manager.steps() == [15, 20]
    assert manager.latest() == tmp_path / "checkpoints" / "step_20"
    assert (manager.latest() / "extra.txt").read_text() == "x"
    (tmp_path / "checkpoints" / "step_25.tmp").mkdir()  # an interrupted save is not a checkpoint
    assert manager.steps() == [15, 20]
    with pytest.raises(ConfigError, match="keep_last"):
        CheckpointManager(tmp_path, keep_last=0)


def test_resume_with_changed_config_is_refused_naming_keys(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.record_config(Run())
    manager.check_resume(Run())  # same config: fine
    changed = Run(data="other.jsonl", train=Train(lr=5e-4))
    with pytest.raises(
        ResumeMismatch, match=r"2 key\(s\): data: 'builtin' -> 'other.jsonl'; train.lr: 0.001 -> 0.0005"
    ):
        manager.check_resume(changed)
    manager.check_resume(changed, force=True)
    manager.check_resume(Run(train=Train(steps=20)), ignore=["train.steps"])


def test_check_resume_config_on_mappings():
    check_resume_config({"a": 1}, {"a": 1})
    with pytest.raises(ResumeMismatch, match="b: None -> 2"):
        check_resume_config({"a": 1}, {"a": 1, "b": 2})
