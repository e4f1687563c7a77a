"""The DiffuSeq denoiser f_θ(x_t, t[, x̂₀]) → x̂₀ (Gong et al. 2023, §3; InfoDiffusion §3).

Word embeddings (width ``embedding_dim``) are tied to the rounding head; the transformer is a
``transformers`` BERT encoder of width ``hidden_size`` (randomly initialised, or from a pretrained
encoder with ``model.init_from``, see :func:`init_from_encoder`) reached through an up projection
and left through a down projection. A sinusoidal embedding of t and learned
position embeddings are added to the projected input. With self-conditioning (Chen et al.
2023, used by InfoDiffusion) the input is [x_t ; x̂₀_prev] along the feature axis.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEncoder

from infodiffusion.config import ModelConfig
from shared_utils.errors import ConfigError


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) steps t [B] -> [B, dim] (Vaswani et al.)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class DiffusionTransformer(nn.Module):
    """x̂₀ predictor over a ``vocab_size`` word-embedding space and ``seq_len`` positions."""

    def __init__(self, config: ModelConfig, vocab_size: int, seq_len: int):
        super().__init__()
        self.config, self.vocab_size, self.seq_len = config, vocab_size, seq_len
        d, h = config.embedding_dim, config.hidden_size
        if config.init_projections == "identity" and not config.init_from:
            raise ConfigError("model.init_projections identity needs model.init_from (a pretrained encoder)")
        self.word_embedding = nn.Embedding(vocab_size, d)
        nn.init.normal_(self.word_embedding.weight, std=1.0)  # DiffuSeq: N(0, 1), comparable to the noise
        if config.freeze_embeddings:  # fixed x₀ targets and rounding head (set by init_from, if any)
            self.word_embedding.weight.requires_grad_(False)
        in_dim = 2 * d if config.self_conditioning else d
        self.input_up_proj = nn.Sequential(nn.Linear(in_dim, h), nn.Tanh(), nn.Linear(h, h))
        self.time_embed = nn.Sequential(nn.Linear(h, 4 * h), nn.SiLU(), nn.Linear(4 * h, h))
        self.position_embedding = nn.Embedding(seq_len, h)
        if config.target_positions == "restart":
            self.segment_embedding = nn.Embedding(2, h)
            nn.init.normal_(self.segment_embedding.weight, std=0.02)
        self.layer_norm = nn.LayerNorm(h, eps=1e-12)
        self.dropout = nn.Dropout(config.dropout)
        bert = BertConfig(
            hidden_size=h,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            intermediate_size=config.intermediate_size,
            hidden_dropout_prob=config.dropout,
            attention_probs_dropout_prob=config.dropout,
            max_position_embeddings=seq_len,
            vocab_size=1,
        )
        bert._attn_implementation = "sdpa"
        self.encoder = BertEncoder(bert)
        self.output_down_proj = nn.Sequential(nn.Linear(h, h), nn.Tanh(), nn.Linear(h, d))

    # parameters that :func:`init_from_encoder` copies from the pretrained encoder (by name prefix)
    PRETRAINED_PREFIXES = ("encoder.", "position_embedding.", "segment_embedding.", "layer_norm.", "word_embedding.")

    def param_groups(self, lr: float, pretrained_lr_scale: float = 1.0) -> list[dict]:
        """AdamW groups: with ``init_from`` the pretrained parameters at ``lr · pretrained_lr_scale``,
        the rest (projections, time embedding) at ``lr``; one group otherwise. Frozen ones are left out."""
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        if not self.config.init_from or pretrained_lr_scale == 1.0:
            return [{"params": [p for _, p in params], "lr": lr}]
        old = [p for n, p in params if n.startswith(self.PRETRAINED_PREFIXES)]
        new = [p for n, p in params if not n.startswith(self.PRETRAINED_PREFIXES)]
        return [{"params": new, "lr": lr}, {"params": old, "lr": lr * pretrained_lr_scale}]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """EMB(w): ids [B, L] -> [B, L, d]."""
        return self.word_embedding(ids)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Rounding head tied to the embedding: x [.., d] -> [.., V]."""
        return x @ self.word_embedding.weight.t()

    def build_input(self, x_t: torch.Tensor, target_mask: torch.Tensor, self_cond: torch.Tensor | None) -> torch.Tensor:
        """[x_t ; x̂₀_prev], the self-conditioning channel zero at source positions and when absent."""
        if not self.config.self_conditioning:
            return x_t
        if self_cond is None:
            cond = torch.zeros_like(x_t)
        else:
            cond = torch.where(target_mask.bool().unsqueeze(-1), self_cond, torch.zeros_like(self_cond))
        return torch.cat([x_t, cond], dim=-1)

    def position_ids(self, target_mask: torch.Tensor) -> torch.Tensor:
        """Position ids [B, L]: 0..L-1 (``continue``), or with ``model.target_positions restart``
        the target counted again from 1 (the first target position gets the id of the first
        source word, right after [CLS]), so target word k and source word k share an id."""
        positions = torch.arange(target_mask.shape[1], device=target_mask.device).expand(target_mask.shape)
        if self.config.target_positions == "continue":
            return positions
        keep = target_mask.bool()
        start = torch.where(keep, positions, torch.full_like(positions, target_mask.shape[1])).min(1, keepdim=True)
        return torch.where(keep, positions - start.values + 1, positions)

    def forward(
        self, x_t: torch.Tensor, t: torch.Tensor, target_mask: torch.Tensor, self_cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict x̂₀ [B, L, d] from x_t [B, L, d] at steps t [B]."""
        h = self.input_up_proj(self.build_input(x_t, target_mask, self_cond))
        temb = self.time_embed(timestep_embedding(t, h.shape[-1]))
        h = h + self.position_embedding(self.position_ids(target_mask)) + temb.unsqueeze(1)
        if self.config.target_positions == "restart":
            h = h + self.segment_embedding(target_mask.long())
        h = self.dropout(self.layer_norm(h))
        h = self.encoder(h)[0]
        return self.output_down_proj(h)

    def save_pretrained(self, folder: str | Path, state_dict: dict | None = None) -> None:
        """Write ``config.json`` + ``model.safetensors`` (weights of ``state_dict``, default own)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"model": asdict(self.config), "vocab_size": self.vocab_size, "seq_len": self.seq_len}
        (folder / "config.json").write_text(json.dumps(meta, indent=2))
        tensors = {k: v.detach().cpu().contiguous() for k, v in (state_dict or self.state_dict()).items()}
        save_file(tensors, str(folder / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> DiffusionTransformer:
        folder = Path(folder)
        meta = json.loads((folder / "config.json").read_text())
        model = cls(ModelConfig(**meta["model"]), meta["vocab_size"], meta["seq_len"])
        model.load_state_dict(load_file(str(folder / "model.safetensors")))
        return model


@torch.no_grad()
def init_from_encoder(model: DiffusionTransformer, name: str, full_ids: list[int]) -> None:
    """Initialise the denoiser from a pretrained BERT encoder ``name`` (e.g. the embedded MiniLM,
    whose vocabulary is the tokenizer's): its first ``num_layers`` transformer layers, its position
    embeddings and embedding LayerNorm, and its word embeddings at ``full_ids`` (the kept
    vocabulary, in compact order), rescaled to unit standard deviation so that x₀ is on the
    scale of the N(0, I) noise, as DiffuSeq's N(0, 1) initialisation is. The up/down projections
    and the time embedding stay random, unless ``model.init_projections`` is ``identity``
    (:func:`identity_projections`). With ``model.target_positions restart`` the segment
    embedding starts as the encoder's token type embeddings 0 (source) and 1 (target). Widths
    that do not match are refused, naming the keys."""
    from shared_utils.models import load_encoder

    encoder, _ = load_encoder(name)
    theirs, ours = encoder.config, model.config
    wanted = {
        "model.hidden_size": (ours.hidden_size, theirs.hidden_size),
        "model.embedding_dim": (ours.embedding_dim, theirs.hidden_size),
        "model.num_heads": (ours.num_heads, theirs.num_attention_heads),
        "model.intermediate_size": (ours.intermediate_size, theirs.intermediate_size),
    }
    wrong = [f"{key}={a} (needs {b})" for key, (a, b) in wanted.items() if a != b]
    if ours.num_layers > theirs.num_hidden_layers:
        wrong.append(f"model.num_layers={ours.num_layers} (at most {theirs.num_hidden_layers})")
    if model.seq_len > theirs.max_position_embeddings:
        wrong.append(f"data.seq_len={model.seq_len} (at most {theirs.max_position_embeddings})")
    if wrong:
        raise ConfigError(f"model.init_from {name}: {', '.join(wrong)}")
    for mine, pretrained in zip(model.encoder.layer, encoder.encoder.layer):
        mine.load_state_dict(pretrained.state_dict())
    embeddings = encoder.embeddings
    model.position_embedding.weight.copy_(embeddings.position_embeddings.weight[: model.seq_len])
    model.layer_norm.load_state_dict(embeddings.LayerNorm.state_dict())
    words = embeddings.word_embeddings.weight[torch.tensor(full_ids)]
    scale = words.std()
    model.word_embedding.weight.copy_(words / scale)
    types = embeddings.token_type_embeddings.weight
    if ours.target_positions == "restart":  # BERT's sentence A / sentence B embeddings
        model.segment_embedding.weight.copy_(types[:2])
    if ours.init_projections == "identity":
        last = model.encoder.layer[ours.num_layers - 1].output.LayerNorm
        if ours.target_positions == "continue":
            model.position_embedding.weight.add_(types[0])
        identity_projections(model, float(scale), last.weight, last.bias)


# gain a of the identity-like projections: tanh(a·x) ≈ a·x for the unit-scale inputs they see
IDENTITY_TANH_GAIN = 0.1


@torch.no_grad()
def identity_projections(model: DiffusionTransformer, scale: float, gamma: torch.Tensor, beta: torch.Tensor) -> None:
    """``model.init_projections identity``: make the random pieces between the pretrained
    embeddings and the pretrained encoder pass the pretrained signal through at init.

    * up: W₂ tanh(W₁ x) with W₁ = a·I, W₂ = (σ/a)·I ≈ σ·x, σ the std of the pretrained word
      embeddings that :func:`init_from_encoder` divided out, so the encoder sees x_t at its own
      embedding scale (DiffuSeq's random projection hands it random features instead); the
      self-conditioning half of W₁ starts at zero;
    * down: W₂ tanh(W₁(h − β)) ≈ (h − β)/g with g the RMS of the last copied layer's LayerNorm
      weight γ (and β its bias), so x̂₀ starts near the unit scale of the embeddings;
    * the time embedding's last layer starts at zero (so the encoder's input is the pretrained
      word + position + token type sum: type 0 folded into the positions, or with
      ``model.target_positions restart`` the segment embedding; t is learnt from there).
    """
    a = IDENTITY_TANH_GAIN
    up1, up2 = model.input_up_proj[0], model.input_up_proj[2]
    h, d = up2.weight.shape[0], model.config.embedding_dim
    eye = torch.eye(h, d)
    up1.weight.zero_()
    up1.weight[:, :d].copy_(a * eye)
    up1.bias.zero_()
    up2.weight.copy_(scale / a * torch.eye(h))
    up2.bias.zero_()
    down1, down2 = model.output_down_proj[0], model.output_down_proj[2]
    down1.weight.copy_(a * torch.eye(h))
    down1.bias.copy_(-a * beta)
    down2.weight.copy_(eye.t() / (a * float(gamma.pow(2).mean().sqrt())))
    down2.bias.zero_()
    model.time_embed[2].weight.zero_()
    model.time_embed[2].bias.zero_()
