"""Routing: KV anchor routing (instance level, the paper's) and token-level routing (baseline).

KV anchor routing (paper, "KV anchor routing"): every input instance j gets one value

    v_j = W_up · SiLU(W_down · ē_j),   ē_j = mean of the input embeddings of the prompt tokens

and expert i owns a key k_i; the gate is g(i|x_j) = TopK(softmax_i(k_i · v_j)), renormalised
over the top-k. Because ē_j is pooled over the *prompt* only, the same expert is chosen when the
prompt is seen alone (inference, every ``generate`` step) and with its target appended
(teacher-forced training).

Token-level routing (the conventional MoE adaptor the paper argues against): every token t gets
its own gate from the FFN input, g(i|x_t) = TopK(softmax_i(k_i · W x_t)).

"No expert" paths (this implementation's addition, ``router.null_threshold``; the paper's top-1
gate always fires): ``activation`` (the default, lemoe.adaptor, in the style of WISE's
activation-based routing), ``calibrated`` (below: an instance whose centred cosine similarity to
every stored edit anchor ē is below a threshold gets no expert) and the ``subject`` heuristic
(lemoe.subjects).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def pooled_embedding(embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``embeddings`` (B, T, d) over positions where ``mask`` (B, T) is 1 -> (B, d)."""
    mask = mask.to(embeddings.dtype).unsqueeze(-1)
    count = mask.sum(1).clamp_min(1.0)
    return (embeddings * mask).sum(1) / count


def topk_gate(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Dense gate weights from scores (..., n): softmax, keep the top-k, renormalise (others 0)."""
    probs = scores.softmax(-1)
    k = min(k, probs.shape[-1])
    top, idx = probs.topk(k, dim=-1)
    gate = torch.zeros_like(probs).scatter(-1, idx, top / top.sum(-1, keepdim=True))
    return gate


class KeyedRouter(nn.Module):
    """Shared projection W_up·SiLU(W_down·) plus one key per expert (keys of old experts frozen)."""

    def __init__(self, d_in: int, dim: int):
        super().__init__()
        self.down = nn.Linear(d_in, dim)
        self.up = nn.Linear(dim, dim)
        self.keys = nn.ParameterList()

    def add_key(self, generator: torch.Generator | None = None) -> nn.Parameter:
        """Append a new key (small random init) and return it."""
        ref = self.up.weight
        key = torch.randn(self.up.out_features, generator=generator, device="cpu").to(ref) * 0.02
        param = nn.Parameter(key)
        self.keys.append(param)
        return param

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """v = W_up · SiLU(W_down · x)."""
        return self.up(F.silu(self.down(x)))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """k_i · v for every key: (..., d_in) -> (..., n_experts)."""
        keys = torch.stack(list(self.keys))
        return self.value(x) @ keys.T


class AnchorMemory(nn.Module):
    """The pooled prompt embeddings ē of every edit, and the expert each one was edited into.

    Used for the routing replay (earlier edits keep their expert while the shared projection
    trains) and for the "no expert" threshold.
    """

    def __init__(self, d_in: int):
        super().__init__()
        self.register_buffer("anchors", torch.zeros(0, d_in))
        self.register_buffer("experts", torch.zeros(0, dtype=torch.long))
        self.register_buffer("threshold", torch.tensor(float("-inf")))

    def add(self, anchors: torch.Tensor, expert: int) -> None:
        self.anchors = torch.cat([self.anchors, anchors.detach().to(self.anchors)])
        fill = torch.full((anchors.shape[0],), expert, dtype=torch.long, device=self.experts.device)
        self.experts = torch.cat([self.experts, fill])

    def similarity(self, x: torch.Tensor) -> torch.Tensor:
        """Highest cosine similarity of each row of ``x`` to a stored anchor, both centred on the anchors' mean."""
        centre = self.anchors.mean(0)
        a = F.normalize(self.anchors - centre, dim=-1)
        q = F.normalize(x.to(self.anchors) - centre, dim=-1)
        return (q @ a.T).max(-1).values

    def calibrate(self, quantile: float) -> float:
        """Set the threshold to the ``quantile`` of each edit's similarity to its nearest *other* edit.

        Reading: a prompt less similar to every edit than (1 - quantile) of the edits are to their
        nearest neighbour is treated as unrelated. Needs >= 2 anchors; returns the threshold.
        """
        if self.anchors.shape[0] < 2:
            self.threshold.fill_(float("-inf"))
            return float("-inf")
        centre = self.anchors.mean(0)
        a = F.normalize(self.anchors - centre, dim=-1)
        sims = a @ a.T
        sims.fill_diagonal_(float("-inf"))
        nearest = sims.max(-1).values
        self.threshold.fill_(torch.quantile(nearest.float(), quantile).item())  # quantile needs fp32/fp64 (bf16 models)
        return float(self.threshold)
