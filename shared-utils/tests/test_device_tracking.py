import socket
import subprocess
import sys

import pytest

from shared_utils.device import AcceleratorConfig, build_accelerator, describe_accelerator, resolve_mixed_precision
from shared_utils.tracking import configure_wandb_mode


def test_auto_precision_is_fp32_on_cpu():
    assert resolve_mixed_precision("auto", cpu=True) == "no"
    assert resolve_mixed_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="mixed_precision"):
        resolve_mixed_precision("fp8")


def test_accelerator_from_config_without_tracker_when_wandb_disabled(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    acc = build_accelerator(AcceleratorConfig(cpu=True, gradient_accumulation_steps=4))
    assert acc.gradient_accumulation_steps == 4
    assert acc.trackers == []
    line = describe_accelerator(acc)
    assert line == "device=cpu processes=1 precision=no grad_accum=4"


def test_wandb_mode_respects_user_and_defaults_to_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert configure_wandb_mode() == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert configure_wandb_mode() == "offline"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert configure_wandb_mode() == "online"


def test_import_is_light():
    code = (
        "import sys, time; t = time.perf_counter(); import shared_utils; "
        "dt = time.perf_counter() - t; heavy = [m for m in ('torch', 'transformers', 'accelerate') "
        "if m in sys.modules]; print(heavy, dt); assert not heavy and dt < 1.0"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_cpu_processes_join_one_gloo_group(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(
        "import torch\n"
        "from shared_utils.device import AcceleratorConfig, build_accelerator\n"
        "acc = build_accelerator(AcceleratorConfig(tracker=None), log=False)\n"
        "total = acc.reduce(torch.tensor([float(acc.process_index + 1)]), reduction='sum')\n"
        "assert acc.num_processes == 2, acc.num_processes\n"
        "assert total.item() == 3.0, total\n"
        # exiting with the gloo group alive can abort ("terminate called without an active exception")
        "acc.wait_for_everyone()\n"
        "torch.distributed.destroy_process_group()\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            str(script),
        ],
        timeout=180,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_save_state_atomically_keeps_the_old_checkpoint_on_a_crash(tmp_path, monkeypatch):
    import torch

    from shared_utils.device import save_state_atomically

    monkeypatch.setenv("WANDB_MODE", "disabled")
    acc = build_accelerator(AcceleratorConfig(cpu=True), log=False)
    model = acc.prepare(torch.nn.Linear(2, 2))
    folder = tmp_path / "step_1"
    save_state_atomically(acc, folder, lambda tmp: (tmp / "extra.txt").write_text("one"))
    assert (folder / "extra.txt").read_text() == "one"
    with torch.no_grad():
        model.weight.add_(1.0)

    def crash(_tmp):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_state_atomically(acc, folder, crash)
    assert (folder / "extra.txt").read_text() == "one"  # the previous checkpoint is untouched
    save_state_atomically(acc, folder)  # the leftover .tmp of the crash is cleared
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_1"]
    assert not (folder / "extra.txt").exists()


def test_logger_writes_to_the_stderr_of_the_moment(monkeypatch):
    import io
    import sys

    from shared_utils.tracking import get_logger

    logger = get_logger("shared_utils.test_stderr_swap")
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logger.info("one")
    first.close()  # what pytest does to a finished test's capture
    monkeypatch.setattr(sys, "stderr", second)
    logger.info("two")
    assert "two" in second.getvalue()
