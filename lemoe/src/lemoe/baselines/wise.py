"""WISE (Wang et al., NeurIPS 2024, "WISE: Rethinking the Knowledge Memory for Lifelong Model
Editing of Large Language Models"), written from the paper for this harness.

Side memory (Sec. 3.1): the value matrix W_v of one FFN (its down-projection) is copied into a
side memory W_v'; edits train only W_v', the main memory W_v stays as it is.

Memory routing (Sec. 3.1, Eq. 3): with A(x) the FFN activation entering the down-projection,

    Δ_act(x) = mean over the prompt tokens t of ‖A(x_t) · (W_v' − W_v)ᵀ‖₂,

and a prompt is answered by the side memory if Δ_act(x) ≥ ε, by the main memory otherwise.
ε = ``act_ratio`` · the lowest Δ_act over every edit prompt so far, computed on the served side
memory after each merge (the paper records the edits' activations while editing; recomputing
keeps ε right after a merge changed W_v'). As with LEMoE's gate, the decision is made on the
prompt and kept for the cached decoding steps after it.

Routing loss (Sec. 3.1, Eq. 5), x_e the batch's edit prompts, x_i unrelated text:

    L_a = [Δ(x_i) − α]₊ + [β − Δ(x_e)]₊ + [γ − (Δ(x_e) − Δ(x_i))]₊,

each term averaged over its prompts (pairs for the third); the edit loss is the target NLL of
the shared loop, run through the side memory.

Knowledge sharding and merging (Sec. 3.2): each edit batch is a shard trained in its own random
subspace of the side memory, W_v' = W_base + M_s ⊙ τ_s with a 0/1 mask M_s of density ρ (the
trainable parameter is τ_s, so nothing outside the mask can move). Shards start from the same
W_base; the served side memory is W_base + TIES(τ_1, …, τ_m) (Yadav et al. 2023: trim to the
largest ``merge_density`` of each τ, elect the sign of Σ τ per entry, average the entries that
agree). After ``merge_every`` shards the merge is consolidated: W_base ← served, shards cleared.
Departure: one side memory (WISE, not WISE-Retrieve's several).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from lemoe.adaptor import down_projection_name, ffn_path, get_submodule
from lemoe.config import AdaptorConfig, TrainConfig, WISEConfig
from lemoe.data import EditRequest, unrelated_text
from lemoe.training import SequentialEditor, encode_texts, fresh_forward_inputs, module_input
from shared_utils.tracking import get_logger

log = get_logger("lemoe")


def ties_merge(task_vectors: list[torch.Tensor], density: float = 1.0) -> torch.Tensor:
    """TIES merge of task vectors (same shape): trim each to its ``density`` largest magnitudes, elect the
    sign of the sum per entry, and take the mean of the entries whose sign agrees (0 where none does)."""
    if not task_vectors:
        raise ValueError("ties_merge needs at least one task vector")
    trimmed = []
    for tau in task_vectors:
        if density < 1.0:
            k = max(1, int(density * tau.numel()))
            cut = tau.abs().flatten().kthvalue(tau.numel() - k + 1).values
            tau = torch.where(tau.abs() >= cut, tau, torch.zeros_like(tau))
        trimmed.append(tau)
    stacked = torch.stack(trimmed)
    sign = torch.sign(stacked.sum(0))
    agree = (torch.sign(stacked) == sign) & (stacked != 0)
    count = agree.sum(0).clamp_min(1)
    return torch.where(agree, stacked, torch.zeros_like(stacked)).sum(0) / count


def shard_mask(shape: torch.Size, density: float, generator: torch.Generator) -> torch.Tensor:
    """A random 0/1 mask with a ``density`` fraction of ones: the subspace one shard may write."""
    return (torch.rand(shape, generator=generator) < density).float()


class SideMemory(nn.Module):
    """Wraps the FFN's down-projection (``nn.Linear`` or GPT-2's ``Conv1D``): main memory W_v and the side
    memory W_v' = W_v + ``delta``; the side memory answers the instances whose Δ_act reaches ε."""

    def __init__(self, proj: nn.Module):
        super().__init__()
        self.proj = proj
        self.transposed = type(proj).__name__ == "Conv1D"  # GPT-2 keeps the weight as (in, out)
        weight = proj.weight.detach()
        self.register_buffer("served", torch.zeros_like(weight.T if self.transposed else weight))  # W_v' − W_v
        self.register_buffer("threshold", torch.tensor(float("inf")))  # ε
        self.training_delta: torch.Tensor | None = None  # set while a shard trains: every instance uses it
        self.decide_mask: torch.Tensor | None = None  # (B, T) prompt positions of a fresh forward
        self.use_side: torch.Tensor | None = None  # (B,) the decision, kept for cached decoding steps
        self.enabled = True

    def activation(self, a: torch.Tensor, delta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Δ_act per row: mean over the positions where ``mask`` (B, T) is 1 of ‖A(x_t)·deltaᵀ‖₂ -> (B,).
        The norm is smoothed (√(Σ² + 1e-12)) so that a zero delta (a new shard) still has a gradient."""
        norms = (F.linear(a, delta.to(a.dtype)).float().pow(2).sum(-1) + 1e-12).sqrt()
        mask = mask.to(norms.dtype)
        return (norms * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        out = self.proj(a)
        if not self.enabled:
            return out
        if self.training_delta is not None:
            return out + F.linear(a, self.training_delta.to(a.dtype))
        if self.decide_mask is not None:
            mask, self.decide_mask = self.decide_mask.to(a.device), None
            self.use_side = self.activation(a, self.served, mask) >= self.threshold
        if self.use_side is None or not self.use_side.any():
            return out
        rows = torch.nonzero(self.use_side).flatten()
        return out.index_add(0, rows, F.linear(a[rows], self.served.to(a.dtype)))


class WISEEditor(SequentialEditor):
    """Sequential WISE on the down-projection of the adaptor layer's FFN; ``editor.model`` works with
    ``generate``. ``cfg`` holds the WISE settings (lemoe.config.WISEConfig)."""

    name = "wise"

    def __init__(self, model: nn.Module, tokenizer, adaptor: AdaptorConfig, train: TrainConfig, cfg: WISEConfig):
        super().__init__(model, tokenizer, adaptor.layer, train, cfg.lr)
        ffn = get_submodule(model, ffn_path(model, adaptor))
        name = down_projection_name(ffn, "WISE")
        self.memory = SideMemory(getattr(ffn, name))
        setattr(ffn, name, self.memory)
        self.cfg = cfg
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.base = torch.zeros_like(self.memory.served)  # W_base − W_v: the last consolidated merge
        self.shards: list[torch.Tensor] = []  # τ of the shards since then (masked)
        self.tau: nn.Parameter | None = None
        self.mask: torch.Tensor | None = None
        self._acts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # A(x) and prompt masks of this batch
        self.edit_acts: list[tuple[torch.Tensor, torch.Tensor]] = []  # every edit prompt so far, for ε
        self._in_routing = False
        self._unrelated = encode_texts(tokenizer, unrelated_text(cfg.null_data), self.device)
        self._unrelated_acts: torch.Tensor | None = None  # A(x_i): computed at the first batch, then kept
        model.register_forward_pre_hook(self._decide_hook, with_kwargs=True)

    # ----- routing -------------------------------------------------------------------------
    def _decide_hook(self, _module, args, kwargs):
        """Plain ``model(...)`` / ``generate``: decide on the prompt of a fresh forward."""
        inputs = None if self._in_routing else fresh_forward_inputs(args, kwargs)
        if inputs is not None:
            self.memory.decide_mask, self.memory.use_side = inputs[1], None
        return None

    @contextmanager
    def _routing(self, input_ids, attention_mask, prompt_mask, training: bool = False) -> Iterator[None]:
        mem = self.memory
        self._in_routing = True
        if training:
            mem.training_delta = self._train_delta()
        else:
            mem.decide_mask, mem.use_side = (prompt_mask if prompt_mask is not None else attention_mask), None
        try:
            yield
        finally:
            self._in_routing = False
            mem.training_delta = mem.decide_mask = mem.use_side = None

    @contextmanager
    def detached(self) -> Iterator[None]:
        """Run the model as if unedited (the main memory only) inside the block."""
        self.memory.enabled = False
        try:
            yield
        finally:
            self.memory.enabled = True

    # ----- one batch -----------------------------------------------------------------------
    def _train_delta(self) -> torch.Tensor:
        """W_v' − W_v of the shard in training: W_base + M ⊙ τ."""
        return self.base + self.mask * self.tau

    def _begin_batch(self, requests: list[EditRequest]) -> list[nn.Parameter]:
        self.mask = shard_mask(self.base.shape, self.cfg.mask_density, self.generator).to(self.base)
        self.tau = nn.Parameter(torch.zeros_like(self.base))
        return [self.tau]

    def _down_inputs(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """A(x): the activations entering the down-projection (nothing below it trains, so computed once)."""
        self._in_routing = True
        try:
            return module_input(self.model, self.memory, input_ids, mask)
        finally:
            self._in_routing = False

    def _prepare_encoded(self, enc: dict[str, torch.Tensor]) -> None:
        if self._unrelated_acts is None:
            self._unrelated_acts = self._down_inputs(self._unrelated["input_ids"], self._unrelated["attention_mask"])
        self._acts = {
            "edits": (self._down_inputs(enc["input_ids"], enc["attention_mask"]), enc["prompt_mask"]),
            "unrelated": (self._unrelated_acts, self._unrelated["attention_mask"]),
        }

    def _activations(self, delta: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: self.memory.activation(a, delta, mask) for name, (a, mask) in self._acts.items()}

    def _extra_loss(self) -> torch.Tensor | None:
        """L_a of Eq. 5 with margins α, β, γ = ``cfg.margin_unrelated``, ``margin_edit``, ``margin_gap``."""
        alpha, beta, gamma = self.cfg.margin_unrelated, self.cfg.margin_edit, self.cfg.margin_gap
        act = self._activations(self._train_delta())
        e, u = act["edits"], act["unrelated"]
        loss = F.relu(u - alpha).mean() + F.relu(beta - e).mean() + F.relu(gamma - (e[:, None] - u[None])).mean()
        return self.cfg.act_weight * loss

    def _converged(self) -> bool:
        """A batch also needs every edit prompt's Δ above every unrelated text's."""
        with torch.no_grad():
            act = self._activations(self._train_delta())
        return bool(act["edits"].min() > act["unrelated"].max())

    def _end_batch(self) -> None:
        """Add the shard, re-merge the served side memory, consolidate every ``merge_every`` shards, set ε."""
        with torch.no_grad():
            self.shards.append((self.mask * self.tau).detach())
            self.memory.served.copy_(self.base + ties_merge(self.shards, self.cfg.merge_density))
            if len(self.shards) >= self.cfg.merge_every:
                self.base, self.shards = self.memory.served.clone(), []
            a, mask = self._acts["edits"]
            self.edit_acts.append((a.detach(), mask))
            lowest = min(float(self.memory.activation(a, self.memory.served, m).min()) for a, m in self.edit_acts)
            self.memory.threshold.fill_(self.cfg.act_ratio * lowest)
            u, u_mask = self._acts["unrelated"]
            unrelated = self.memory.activation(u, self.memory.served, u_mask)
        log.info(
            "wise shard %d: Δ_act on all edits so far >= %.3g, on unrelated text <= %.3g, threshold ε %.3g",
            len(self.history) + 1,
            lowest,
            float(unrelated.max()),
            float(self.memory.threshold),
        )
        self.tau = self.mask = None
        self._acts = {}
