"""CUDA checks, run by the GPU CI job (`-m gpu`): a bf16 editing step and a short `lemoe edit` on CUDA.

The bf16 step also runs on the CPU (it found a bf16-only bug there). Editing is sequential (one
batch after another), so lemoe has no distributed path to test.
"""

import json
import math

import pytest
import torch
from conftest import TOKENIZER, tiny_config, tiny_model

from lemoe.cli import main
from lemoe.data import EditRequest
from lemoe.editor import LEMoEEditor

ON_GPU = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=ON_GPU)])
def test_bf16_editing_step(device):
    model = tiny_model("llama").to(device, torch.bfloat16)
    editor = LEMoEEditor(model, TOKENIZER, tiny_config(max_steps=3, early_stop_loss=-1.0))
    adaptor = editor.ffn_path + "."

    def base_weights():  # everything but the adaptor's own tensors (its wrapped FFN included)
        return {
            k: v for k, v in model.state_dict().items() if not k.startswith(adaptor) or k.startswith(adaptor + "ffn.")
        }

    before = {k: v.clone() for k, v in base_weights().items()}
    record = editor.edit([EditRequest("the sky is", "green"), EditRequest("grass is", "red")])
    expert = editor.adaptor.experts[0]
    assert expert.fc_out.weight.device.type == device and expert.fc_out.weight.dtype == torch.bfloat16
    assert record["steps"] == 3 and math.isfinite(record["nll"])
    assert expert.fc_out.weight.abs().sum() > 0  # trained away from its zero start
    after = base_weights()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)  # base untouched


@pytest.mark.parametrize("precision", [pytest.param("bf16", marks=ON_GPU)])
def test_edit_command_on_cuda(precision, tmp_path):
    from shared_utils.models import EmbeddedModelMissing, resolve_model

    try:
        resolve_model("smollm2-135m-instruct")
    except EmbeddedModelMissing as err:
        pytest.skip(str(err))
    out = tmp_path / "out"
    args = ["--accelerator.mixed_precision", precision, "--accelerator.tracker", "none", "--output_dir", str(out)]
    assert main(["edit", "--config", "tiny", *args]) == 0  # the accelerator picks the GPU by itself
    row = json.loads((out / "lemoe.json").read_text())
    assert row["device"].startswith("cuda:"), row["device"]
    assert 0.0 <= row["metrics"]["rel"] <= 1.0 and row["metrics"]["rel"] > 0.5
