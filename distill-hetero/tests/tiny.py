"""Hub-free helpers: a byte-level BPE tokenizer trained here, a tiny LLaMA teacher, tiny run configs."""

from __future__ import annotations

from pathlib import Path

import torch

from distill_hetero.config import RunConfig

CORPUS = [
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
    "### Instruction: What is the capital of France? ### Response: The capital of France is Paris.",
    "### Input: The cat sleeps on the sofa. Name three fruits: apple, banana and cherry.",
    "The dog barks. The cow says moo. Two plus three is five. Translate the sentence into French.",
]


def make_tokenizer(extra_words: tuple[str, ...] = ()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>", *extra_words],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def make_teacher(tokenizer, layers: int = 4, width: int = 32):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=width,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    teacher = LlamaForCausalLM(config).eval()
    teacher.requires_grad_(False)
    return teacher


def tiny_config(tmp_path: Path, **overrides) -> RunConfig:
    """A 4-layer LLaMA teacher (width 32) -> 2-layer GPT-2 student (width 16) run."""
    from shared_utils.config import flatten_config, load_config

    base = {
        "student": {"family": "gpt2", "num_layers": 2, "hidden_size": 16, "num_heads": 2, "init": "random"},
        "train": {"steps": 4, "batch_size": 2, "lr": 1e-2, "warmup_steps": 1},
        "accelerator": {"tracker": None, "cpu": True, "mixed_precision": "no"},
        "output_dir": str(tmp_path / "run"),
    }
    return load_config(RunConfig, None, {**flatten_config(base), **overrides})


def make_examples(tokenizer, n: int = 8):
    from distill_hetero.data import format_prompt, tokenize_example

    answers = ["Paris.", "The cow says moo.", "apple, banana and cherry", "five"]
    return [
        tokenize_example(tokenizer, i, format_prompt(f"Question {i}: what is it?"), answers[i % 4], 64, 12)
        for i in range(n)
    ]
