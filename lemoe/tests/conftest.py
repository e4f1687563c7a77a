"""Tiny hub-free models and a character-level tokenizer for the tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from lemoe.config import LEMoEConfig

os.environ.setdefault("WANDB_MODE", "disabled")  # the default tracker is wandb: tests log nowhere
VOCAB = 64
torch.set_num_threads(1)  # tiny models: thread start-up costs more than it saves on a shared CPU
# with --import-mode=importlib the tests import the helpers below as `from conftest import ...`
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _decoded() -> dict[int, str]:
    """id -> the character it decodes to: of the printable characters sharing the id, a letter, else the
    space, else the first."""
    table: dict[int, str] = {}
    for c in map(chr, range(32, 127)):
        i = 3 + (ord(c) % (VOCAB - 3))
        rank = (not c.isalpha(), c != " ")
        if i not in table or rank < (not table[i].isalpha(), table[i] != " "):
            table[i] = c
    return {i: table.get(i, "?") for i in range(VOCAB)}


class CharTokenizer:
    """Maps each character to one id (3..63); pad id 0. Enough for the editing code paths."""

    pad_token_id = 0
    eos_token_id = 1

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [3 + (ord(c) % (VOCAB - 3)) for c in text]}

    def decode(self, ids, skip_special_tokens=False):
        """Lossy (ids are characters modulo the vocabulary): each non-special id decodes to one of its
        characters, a letter or the space where it has one (so words survive a round trip)."""
        return "".join(DECODED[int(i)] for i in ids if int(i) > 2)


def tiny_model(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "llama":
        cfg = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        )
        model = LlamaForCausalLM(cfg)
    else:
        cfg = GPT2Config(
            vocab_size=VOCAB,
            n_embd=32,
            n_layer=2,
            n_head=4,
            n_positions=64,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=1,
        )
        model = GPT2LMHeadModel(cfg)
    return model.eval()


def tiny_config(**train) -> LEMoEConfig:
    cfg = LEMoEConfig()
    cfg.adaptor.layer = 1
    cfg.adaptor.expert_width = 32
    cfg.router.dim = 16
    cfg.router.null_threshold = "calibrated"  # most test edits carry no subject (the default gate needs one)
    cfg.train.lr = 1e-2
    cfg.train.max_steps = 60
    cfg.train.early_stop_loss = 0.05
    cfg.train.progress = False
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


DECODED = _decoded()
TOKENIZER = CharTokenizer()


@torch.no_grad()
def plain_forward_is_unedited(editor, prompt: str) -> bool:
    """Whether a plain ``editor.model(...)`` forward (routing through the model's own hook) gives the
    unedited model's logits bit for bit."""
    ids = torch.tensor([editor.tokenizer(prompt)["input_ids"]])
    edited = editor.model(input_ids=ids).logits
    with editor.detached():
        return torch.equal(edited, editor.model(input_ids=ids).logits)


@pytest.fixture
def tokenizer():
    return TOKENIZER


@pytest.fixture(params=["llama", "gpt2"])
def kind(request):
    return request.param


def shared_data_dir() -> Path:
    override = os.environ.get("LEMOE_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def nothing_written_to_the_working_directory():
    """Tests write under tmp_path only: no results/ or runs/ may appear where pytest was started."""
    cwd = Path.cwd()
    before = {p.name for p in cwd.iterdir()}
    yield
    new = sorted({p.name for p in cwd.iterdir()} - before)
    assert not new, f"tests left {new} in {cwd}"
