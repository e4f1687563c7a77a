"""The autoregressive (LoRA) context row: prompt masking, padding, and a tiny LLaMA that learns
two pairs through LoRA alone and decodes them back greedily."""

import pytest
import torch

from infodiffusion.autoregressive import PROMPT, LoraBaselineConfig, collate, encode_pair, finetune, greedy_decode


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from shared_utils.errors import ModelNotFound
    from shared_utils.models import resolve_model

    try:
        path = resolve_model("smollm2-135m-instruct").path
    except (ModelNotFound, ImportError) as err:
        pytest.skip(f"embedded SmolLM2 not installed: {err}")
    tok = AutoTokenizer.from_pretrained(path)
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


def test_labels_cover_only_target_and_eos(tokenizer):
    ids, labels = encode_pair(tokenizer, "How are you?", "How do you do?")
    prompt = tokenizer(PROMPT.format(src="How are you?"), add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt)] == prompt and labels[: len(prompt)] == [-100] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :] and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[len(prompt) : -1]) == " How do you do?"


def test_collate_pads_right_and_masks_padding():
    batch = collate([([1, 2, 3], [-100, 2, 3]), ([4], [4])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]


def test_lora_learns_pairs_and_greedy_decodes_them(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.5,  # the frozen head must be able to make confident logits after the final RMSNorm
    )
    model = LlamaForCausalLM(config)
    pairs = [{"src": "red apple", "trg": "green pear"}, {"src": "big dog", "trg": "small cat"}]
    cfg = LoraBaselineConfig(lr=2e-2, steps=60, batch_size=2, lora_r=16, lora_alpha=32)
    losses = finetune(model, tokenizer, pairs, cfg)
    assert losses[-1] < 0.1 * losses[0]
    hyps = greedy_decode(model, tokenizer, [p["src"] for p in pairs], max_new_tokens=8)
    assert hyps == ["green pear", "small cat"]
    frozen = [n for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    assert frozen == []  # only the adapters train
