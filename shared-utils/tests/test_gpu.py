"""Run by the self-hosted GPU job (`make test-shared-utils PYTEST_ARGS="-m gpu"`); skipped without CUDA."""

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_auto_precision_is_bf16_on_cuda_and_a_step_trains():
    from shared_utils.device import AcceleratorConfig, build_accelerator

    accelerator = build_accelerator(AcceleratorConfig(tracker=None), log=False)
    assert accelerator.device.type == "cuda"
    assert accelerator.mixed_precision == ("bf16" if torch.cuda.is_bf16_supported() else "no")
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model, optimizer = accelerator.prepare(model, optimizer)
    x = torch.randn(64, 16, device=accelerator.device)
    y = x.sum(dim=1, keepdim=True)
    losses = []
    for _ in range(20):
        with accelerator.autocast():
            loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_embedded_smollm2_answers_on_cuda_in_bf16():
    from shared_utils.models import load_causal_lm

    model, tokenizer = load_causal_lm("smollm2-135m-instruct", dtype=torch.bfloat16, device="cuda")
    inputs = tokenizer("The capital of France is", return_tensors="pt").to("cuda")
    out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert tokenizer.decode(out[0, inputs["input_ids"].shape[1] :]).startswith(" Paris")
