"""AlphaEdit (Fang et al., ICLR 2025): training-free lifelong editing by a null-space constrained
closed-form update of one down-projection.

Locate-then-edit as in MEMIT, on the down-projection W (d_model × d_ff) of the adaptor layer's FFN:

- keys kᵢ: the input of W at the edit's key positions. The paper takes one key per edit, the
  subject's last token, in early layers (4–8 of LLaMA3-8B) whose output attention carries to the
  answer. At the adaptor layer here (25 of 30, as every method in this harness) only 5 layers are
  left for that, so ``keys: answer`` (default) takes every position that predicts an answer token
  (the last prompt token and each answer token but the last: what greedy decoding of the target
  sees), each a key of its own; ``keys: last_prompt`` takes the last prompt token only;
- value: v*ᵢ = W kᵢ + δᵢ, where δᵢ is found by gradient steps on vectors added to W's output at the
  key positions, minimising the target NLL (ROME's value optimisation: Adam, ``v_steps`` steps at
  ``v_lr``, weight decay on δ, ‖δᵢ‖ clamped to ``clamp_norm`` × ‖W kᵢ‖); the residual R = [δᵢ];
- null space: P = Û Ûᵀ with Û the eigenvectors of K₀K₀ᵀ/n whose eigenvalues are below
  ``nullspace_threshold`` × the largest one, K₀ the keys of every token of preserved text (the
  package's unrelated calibration lines: neither edits nor probes), so that (W + Δ)K₀ ≈ WK₀
  (Eq. 9–10);
- update (Eq. 15, as the paper's code solves it): Δ = R K₁ᵀ P (C_p P + K₁K₁ᵀ P + λI)⁻¹, with K₁ the
  batch's keys and C_p = Σ K_pK_pᵀ over every earlier batch (lifelong); W ← W + Δ, C_p ← C_p + K₁K₁ᵀ.

Δ's rows lie in the range of P (solving (P M + λI)x = P y gives x = P(y − M x)/λ), so Δ k = 0 for
any k with P k = 0: the outputs on the preserved keys' exact null-space complement do not move (tested).
Nothing trains through the harness's step loop; a batch costs ``v_steps`` forwards of the layers above
the edited one plus one d_ff × d_ff solve, whatever T.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from lemoe.adaptor import down_projection_name, ffn_path, get_submodule
from lemoe.baselines.grace import last_positions
from lemoe.config import AdaptorConfig, AlphaEditConfig, TrainConfig
from lemoe.data import EditRequest, unrelated_text
from lemoe.training import (
    SequentialEditor,
    encode_pairs,
    encode_texts,
    module_input,
    target_nll,
)
from shared_utils.tracking import get_logger

log = get_logger("lemoe")


def null_space_projection(keys: torch.Tensor, threshold: float) -> torch.Tensor:
    """P = ÛÛᵀ over the eigenvectors of ``keysᵀkeys / n`` (keys: n × d) with eigenvalue below
    ``threshold`` × the largest (Eq. 9–10)."""
    cov = keys.double().T @ keys.double() / keys.shape[0]
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    small = eigenvectors[:, eigenvalues < threshold * eigenvalues.max()]
    return (small @ small.T).float()


def alphaedit_update(
    residuals: torch.Tensor, keys: torch.Tensor, projection: torch.Tensor, earlier: torch.Tensor, l2: float
) -> torch.Tensor:
    """Δ = R K₁ᵀ P (C_p P + K₁K₁ᵀ P + λI)⁻¹ (Eq. 15); ``residuals`` B × d_model, ``keys`` B × d_ff,
    ``earlier`` = C_p (d_ff × d_ff). Returns Δ, d_model × d_ff, in float32."""
    k, r, p = keys.double().T, residuals.double().T, projection.double()
    lhs = p @ (earlier.double() + k @ k.T) + l2 * torch.eye(p.shape[0], dtype=torch.float64, device=p.device)
    return torch.linalg.solve(lhs, p @ k @ r.T).T.float()


class AlphaEditEditor(SequentialEditor):
    """Sequential AlphaEdit on the down-projection of the adaptor layer's FFN (``cfg``: AlphaEditConfig)."""

    name = "alphaedit"

    def __init__(self, model: nn.Module, tokenizer, adaptor: AdaptorConfig, train: TrainConfig, cfg: AlphaEditConfig):
        super().__init__(model, tokenizer, adaptor.layer, train, cfg.v_lr)
        ffn = get_submodule(model, ffn_path(model, adaptor))
        name = down_projection_name(ffn, "AlphaEdit")
        self.down: nn.Module = getattr(ffn, name)
        # nn.Linear stores W as d_model × d_ff; GPT-2's Conv1D as its transpose
        self.transposed = not isinstance(self.down, nn.Linear)
        self.cfg = cfg
        preserved = encode_texts(tokenizer, unrelated_text(cfg.null_data), self.device)
        k0 = module_input(model, self.down, preserved["input_ids"], preserved["attention_mask"])
        k0 = k0[preserved["attention_mask"].bool()]  # every real token of the preserved text
        self.projection = null_space_projection(k0, cfg.nullspace_threshold)
        self.earlier = torch.zeros_like(self.projection)  # C_p = Σ K_p K_pᵀ of the edits so far
        log.info(
            "alphaedit: null space of %d preserved keys keeps %d of %d directions",
            k0.shape[0],
            round(float(self.projection.trace())),
            self.projection.shape[0],
        )

    def key_mask(self, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        """B × L, True at the key positions of each row (``cfg.keys``)."""
        if self.cfg.keys == "last_prompt":
            positions = last_positions(enc["prompt_mask"])
            return torch.arange(enc["prompt_mask"].shape[1], device=positions.device)[None] == positions[:, None]
        predicts = enc["labels"][:, 1:] != -100  # position t predicts token t + 1
        return torch.cat([predicts, torch.zeros_like(predicts[:, :1])], 1)

    def _values(
        self, enc: dict[str, torch.Tensor], mask: torch.Tensor, base_out: torch.Tensor
    ) -> tuple[torch.Tensor, float]:
        """(δᵢ per key, the last step's target NLL): the vectors added to W's output at the key positions
        that minimise the target NLL."""
        delta = torch.zeros_like(base_out, requires_grad=True)
        limit = self.cfg.clamp_norm * base_out.norm(dim=-1, keepdim=True)

        def add_delta(_module, _args, out):
            added = torch.zeros_like(out)
            added[mask] = delta.to(out.dtype)
            return out + added

        handle = self.down.register_forward_hook(add_delta)
        optimizer = torch.optim.Adam([delta], lr=self.cfg.v_lr)
        h = self._layer_cache(enc)
        try:
            for _ in range(self.cfg.v_steps):
                with self.autocast():
                    nll = target_nll(self.model, self._final_hidden(enc, h), enc["labels"])
                loss = nll + self.cfg.v_weight_decay * (delta**2).sum(-1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():  # ‖δ‖ ≤ clamp_norm × ‖W k‖ (ROME's clamp)
                    delta.mul_(torch.clamp(limit / delta.norm(dim=-1, keepdim=True).clamp_min(1e-12), max=1.0))
        finally:
            handle.remove()
        return delta.detach(), float(nll.detach())

    def edit(self, requests: list[EditRequest]) -> dict[str, float]:
        """One closed-form update of W for the batch (no step loop of the harness)."""
        if not requests:
            raise ValueError("edit() needs at least one request")
        start = time.perf_counter()
        self.model.eval()
        enc = encode_pairs(self.tokenizer, [r.prompt for r in requests], [r.target for r in requests], self.device)
        mask = self.key_mask(enc)
        keys = module_input(self.model, self.down, enc["input_ids"], enc["attention_mask"])[mask].float()
        with torch.no_grad():
            base_out = self.down(keys)
        residuals, nll = self._values(enc, mask, base_out)
        with torch.no_grad():
            delta_w = alphaedit_update(residuals, keys, self.projection, self.earlier, self.cfg.l2)
            self.down.weight += (delta_w.T if self.transposed else delta_w).to(self.down.weight.dtype)
            self.earlier += keys.T @ keys
        record = {
            "batch": len(self.history) + 1,
            "edits": len(requests),
            "sequences": len(requests),
            "keys": len(keys),
            "steps": self.cfg.v_steps,
            "nll": nll,
            "train_s": time.perf_counter() - start,
        }
        self.history.append(record)
        return record
