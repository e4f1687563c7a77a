"""Hub-free fixtures: a word-level tokenizer built here and tiny random LLaMA/GPT-2 models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from semantic_peft.builtin_facts import NEIGHBOURHOOD_PROBES, UNRELATED_PROBES, builtin_facts

torch.set_num_threads(1)  # tiny models: threads only fight over the shared cores

EXTRA_WORDS = [
    "Alice",
    "lives",
    "in",
    "Wonderland",
    "Alice's",
    "home",
    "is",
    "Bob",
    "owns",
    "a",
    "red",
    "car",
    "The",
    "sky",
    "blue",
]


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words: dict[str, None] = {}
    texts = [t for n in (1, 2, 25, 30) for f in builtin_facts(n, 0) for t in (f.prompt, f.target, *f.paraphrases)]
    probes = [*UNRELATED_PROBES, *(p for per_relation in NEIGHBOURHOOD_PROBES.values() for p in per_relation)]
    texts += [t for probe in probes for t in probe] + EXTRA_WORDS
    for text in texts:
        for word, _ in pre_tokenizers.WhitespaceSplit().pre_tokenize_str(text):
            words.setdefault(word, None)
    vocab = {"<unk>": 0, "<pad>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


@pytest.fixture(scope="session")
def tokenizer():
    return _word_tokenizer()


def tiny_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=0,
        initializer_range=0.1,
    )
    return LlamaForCausalLM(config).eval()


def tiny_gpt2(vocab_size: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=0,
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def llama(tokenizer):
    return tiny_llama(len(tokenizer))


@pytest.fixture
def facts():
    return builtin_facts(per_relation=1, seed=0)


@pytest.fixture
def shared_data() -> Path:
    """The benchmark samples outside the repo (``$SEMANTIC_PEFT_SHARED_DATA`` overrides); skip if absent."""
    override = os.environ.get("SEMANTIC_PEFT_SHARED_DATA")
    folder = Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"shared benchmark samples not found at {folder} (set SEMANTIC_PEFT_SHARED_DATA)")
    return folder


@pytest.fixture
def make_llama(tokenizer):
    """``make_llama(seed=0)``: a fresh tiny LLaMA with the test vocabulary."""
    return lambda seed=0: tiny_llama(len(tokenizer), seed)


@pytest.fixture
def make_gpt2(tokenizer):
    return lambda seed=0: tiny_gpt2(len(tokenizer), seed)
