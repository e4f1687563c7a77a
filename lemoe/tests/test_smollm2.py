"""Integration tests on the embedded SmolLM2-135M-Instruct (marked slow; they run in CI)."""

import json

import pytest
import torch
from conftest import shared_data_dir

from lemoe.config import LEMoEConfig
from lemoe.data import load_edits
from lemoe.editor import LEMoEEditor
from lemoe.metrics import build_eval_sets, evaluate, greedy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2():
    from shared_utils.models import EmbeddedModelMissing, load_causal_lm

    try:
        return load_causal_lm("smollm2-135m-instruct")
    except EmbeddedModelMissing as err:
        pytest.skip(str(err))


def test_tokenizer_round_trip(smollm2):
    _, tok = smollm2
    ids = tok("The capital of France is Paris")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis", "ĠParis"]


def test_twenty_sequential_zsre_edits(smollm2):
    path = shared_data_dir() / "knowledge-editing" / "zsre_mend_eval_1000.json"
    if not path.exists():
        pytest.skip(f"shared ZsRE sample not found at {path} (set LEMOE_SHARED_DATA)")
    model, tok = smollm2
    for p in model.parameters():
        p.requires_grad_(False)
    requests = load_edits(str(path), limit=20, skip_invalid=True)
    cfg = LEMoEConfig()
    cfg.adaptor.layer, cfg.train.lr, cfg.train.max_steps, cfg.train.early_stop_loss = 25, 1e-2, 40, 0.05
    cfg.train.progress = False
    cfg.router.null_threshold = "subject"  # the default run's gate: no expert unless an edited subject is named
    sets = build_eval_sets(model, tok, requests, cfg.adaptor.layer)
    editor = LEMoEEditor(model, tok, cfg)
    for start in range(0, 20, 5):  # 4 batches of 5 -> 4 experts
        editor.edit(requests[start : start + 5])
    metrics = evaluate(editor, sets)
    assert editor.adaptor.num_experts == 4
    assert metrics["rel"] >= 0.9, metrics
    assert metrics["loc"] >= 0.9, metrics
    # the edited model answers through plain `generate` too (routing from the prompt alone)
    generated, targets = greedy(editor, [r.prompt for r in requests[:4]], [r.target for r in requests[:4]])
    matches = sum(torch.equal(g[: t.numel()], t) for g, t in zip(generated, targets, strict=True))
    assert matches >= 3


def test_tiny_install_check_is_deterministic_and_writes_only_its_output_dir(tmp_path, monkeypatch, smollm2):
    """`lemoe edit --config tiny --output_dir DIR` (the install check), twice from an empty folder."""
    from lemoe.cli import main

    monkeypatch.chdir(tmp_path)
    rows = []
    for out in ("a", "b"):
        assert main(["edit", "--config", "tiny", "--output_dir", out]) == 0
        rows.append({p.name: json.loads(p.read_text())["metrics"] for p in sorted((tmp_path / out).glob("*.json"))})
    assert rows[0] == rows[1] and set(rows[0]) == {
        "lemoe.json",
        "lemoe_gate_none.json",
        "lemoe_gate_calibrated.json",
        "lemoe_gate_subject.json",
        "ft_l.json",
    }
    assert rows[0]["lemoe.json"]["rel"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
