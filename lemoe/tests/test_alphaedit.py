import torch
from conftest import tiny_config, tiny_model
from test_grace import WordTokenizer

from lemoe.baselines.alphaedit import AlphaEditEditor, alphaedit_update, null_space_projection
from lemoe.config import AlphaEditConfig
from lemoe.data import EditRequest
from lemoe.metrics import build_eval_sets, evaluate
from lemoe.training import encode_texts, module_input


def test_null_space_projection_is_the_orthogonal_complement_of_the_preserved_keys():
    torch.manual_seed(0)
    preserved = torch.randn(5, 3) @ torch.randn(3, 8)  # 5 keys spanning 3 of 8 directions
    p = null_space_projection(preserved, threshold=1e-6)
    assert torch.allclose(p @ p, p, atol=1e-5) and torch.allclose(p, p.T, atol=1e-6)
    assert round(float(p.trace())) == 5
    assert (p @ preserved.T).abs().max() < 1e-4


def test_update_leaves_preserved_keys_unmoved_and_writes_the_edits():
    torch.manual_seed(0)
    preserved = torch.cat([torch.randn(6, 3), torch.zeros(6, 5)], 1)  # the first 3 of 8 directions
    edits = torch.cat([torch.zeros(2, 3), torch.randn(2, 5)], 1)  # keys in the null space
    residuals = torch.randn(2, 4)
    p = null_space_projection(preserved, threshold=1e-6)
    delta = alphaedit_update(residuals, edits, p, torch.zeros(8, 8), l2=1e-6)
    assert delta.shape == (4, 8)
    assert (delta @ preserved.T).abs().max() < 1e-5  # W K0 unchanged
    assert torch.allclose(delta @ edits.T, residuals.T, atol=1e-4)  # (W + Δ) k = W k + δ
    # an earlier batch's keys (C_p) hold their values too: editing again with a zero residual for them
    first = alphaedit_update(residuals[:1], edits[:1], p, torch.zeros(8, 8), l2=1e-6)
    second = alphaedit_update(residuals[1:], edits[1:], p, edits[:1].T @ edits[:1], l2=1e-6)
    assert (second @ edits[0]).abs().max() < 1e-3 and torch.allclose(first @ edits[0], residuals[0], atol=1e-4)


def test_alphaedit_edits_a_tiny_model_and_keeps_the_preserved_text(kind, tmp_path):
    tokenizer = WordTokenizer()
    requests = [
        EditRequest("the sky is", "green", "the sky is", "dogs are", "nice"),
        EditRequest("water is", "dry", "water is", "cats are", "soft"),
    ]
    preserved = tmp_path / "preserved.txt"
    # the calibration split is the even lines: 5 tokens, so K0K0ᵀ has an exact null space in d_ff = 64
    preserved.write_text("a quiet morning\nheld out\nbirds sing\n")
    cfg = tiny_config()
    model = tiny_model(kind)  # its FFN outputs are near 0, so ROME's clamp (4 × ‖W k‖) is lifted
    editor = AlphaEditEditor(
        model, tokenizer, cfg.adaptor, cfg.train, AlphaEditConfig(null_data=str(preserved), l2=1e-3, clamp_norm=1e3)
    )
    sets = build_eval_sets(model, tokenizer, requests, layer=1)
    before = evaluate(editor, sets)
    lines = encode_texts(tokenizer, ["a quiet morning", "birds sing"])
    real = lines["attention_mask"].bool()
    logits = model(**lines).logits[real]
    keys_before = module_input(model, editor.down, lines["input_ids"], lines["attention_mask"])
    for request in requests:
        record = editor.edit([request])
        assert record["steps"] == 25 and record["sequences"] == 1
    after = evaluate(editor, sets)
    assert before["rel"] < 1.0 and after["rel"] == 1.0
    # the preserved text's keys are in P's null complement: its logits do not move
    assert torch.equal(module_input(model, editor.down, lines["input_ids"], lines["attention_mask"]), keys_before)
    assert torch.allclose(model(**lines).logits[real], logits, atol=1e-4)
