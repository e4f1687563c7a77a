"""Module insertion: the MoE adaptor beside one FFN (paper, "Module insertion").

    h(x) = FFN(x) + λ · Σᵢ g(i|x) · Eᵢ(x)

Each expert Eᵢ is a small FFN whose output projection starts at zero, so a new, untrained
expert changes nothing. Every edit batch adds one expert and one router key; earlier experts
and keys are frozen (``requires_grad=False``) and therefore stay bit-for-bit unchanged.

Activation gate (``router.null_threshold = 'activation'``, this implementation's no-expert path,
after WISE's activation-based routing, Wang et al. 2024, Sec. 3.2): the expert Eᵢ chosen by the
KV anchor router fires on an instance only if its activation on the prompt,

    Δᵢ(x) = mean over the prompt tokens t of ‖Eᵢ(x_t)‖₂,

reaches the expert's threshold εᵢ; otherwise the instance runs the bare FFN. Training pushes Δ
down on unrelated text (lemoe.editor) and εᵢ is set between the two (:func:`activation_threshold`).
The decision is made on a forward that starts on the prompt and kept for the cached decoding
steps after it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lemoe.config import AdaptorConfig, RouterConfig
from lemoe.routing import AnchorMemory, KeyedRouter, topk_gate
from lemoe.subjects import SubjectIndex
from shared_utils.config import check_choices
from shared_utils.errors import ConfigError
from shared_utils.models import decoder_layers_path


class UnsupportedArchitecture(ConfigError):
    """The FFN to wrap could not be found; the message names the config option to set."""


def get_submodule(root: nn.Module, path: str) -> nn.Module:
    module = root
    for part in path.split("."):
        if not hasattr(module, part):
            raise AttributeError(part)
        module = getattr(module, part)
    return module


def find_layers_path(model: nn.Module) -> str:
    """Dotted path of the decoder-layer list (``model.layers`` for LLaMA-family, ``transformer.h`` for GPT-2);
    the error names the option that sets the FFN by hand."""
    try:
        return decoder_layers_path(model)
    except ValueError as err:
        raise UnsupportedArchitecture(
            f"{err}: set adaptor.module_path to the dotted path of the FFN to wrap, e.g. 'model.layers.{{layer}}.mlp'"
        ) from None


def ffn_path(model: nn.Module, cfg: AdaptorConfig) -> str:
    """Dotted path of the FFN of layer ``cfg.layer`` (from ``cfg.module_path`` or the architecture)."""
    if cfg.module_path:
        path = cfg.module_path.format(layer=cfg.layer)
        try:
            get_submodule(model, path)
        except AttributeError as err:
            raise UnsupportedArchitecture(
                f"adaptor.module_path={cfg.module_path!r} does not name a module of {type(model).__name__} "
                f"(no attribute {err.args[0]!r})"
            ) from err
        return path
    layers_path = find_layers_path(model)
    layers = get_submodule(model, layers_path)
    if not 0 <= cfg.layer < len(layers):
        raise UnsupportedArchitecture(f"adaptor.layer={cfg.layer} is out of range: the model has {len(layers)} layers")
    for name in ("mlp", "feed_forward", "ffn"):
        if hasattr(layers[cfg.layer], name):
            return f"{layers_path}.{cfg.layer}.{name}"
    raise UnsupportedArchitecture(
        f"layer {cfg.layer} of {type(model).__name__} has no 'mlp'/'feed_forward': set adaptor.module_path"
    )


def down_projection_name(ffn: nn.Module, method: str) -> str:
    """Attribute name of the FFN's down-projection (``down_proj``, GPT-2's ``c_proj``, ``fc2``, ``w2``); the
    error names ``method`` and the FFN's children."""
    name = next((n for n in ("down_proj", "c_proj", "fc2", "w2") if hasattr(ffn, n)), None)
    if name is None:
        children = [n for n, _ in ffn.named_children()]
        raise ValueError(f"{method}: the FFN has no down-projection among {children} (expected down_proj or c_proj)")
    return name


def hidden_size(model: nn.Module) -> int:
    config = model.config
    for name in ("hidden_size", "n_embd", "d_model"):
        if hasattr(config, name):
            return int(getattr(config, name))
    raise UnsupportedArchitecture(f"cannot read the hidden size of {type(model).__name__}")


class Expert(nn.Module):
    """Eᵢ(x) = W₂ · SiLU(W₁ · x), with W₂ (and its bias) initialised to zero."""

    def __init__(self, d_model: int, width: int, generator: torch.Generator | None = None):
        super().__init__()
        self.fc_in = nn.Linear(d_model, width)
        self.fc_out = nn.Linear(width, d_model)
        with torch.no_grad():
            bound = 1.0 / d_model**0.5
            self.fc_in.weight.copy_(torch.empty(width, d_model).uniform_(-bound, bound, generator=generator))
            self.fc_in.bias.zero_()
            self.fc_out.weight.zero_()
            self.fc_out.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(F.silu(self.fc_in(x)))


def activation(expert: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Δ per row: mean over the positions where ``mask`` (B, T) is 1 of ‖E(x_t)‖₂, x (B, T, d) -> (B,).

    The norm is smoothed (√(Σ² + 1e-12)) so that it has a gradient at a zero output (new experts)."""
    norms = (expert(x).float().pow(2).sum(-1) + 1e-12).sqrt()
    mask = mask.to(norms.dtype)
    return (norms * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


def activation_threshold(edits: torch.Tensor, unrelated: torch.Tensor) -> float:
    """ε: midway between the highest Δ on unrelated calibration text and the lowest Δ on the expert's
    edit prompts (the max-margin point when they are apart; between the overlapping ends when not)."""
    return float((unrelated.max() + edits.min()) / 2)


class MoEAdaptor(nn.Module):
    """Wraps an FFN: output = FFN(x) + λ · Σᵢ g(i|x) · Eᵢ(x).

    ``router.mode == 'kv_anchor'``: the gate is one row per instance, set beforehand with
    :meth:`set_instance_gate` (the editor computes it from the pooled prompt embedding).
    ``router.mode == 'token'``: the gate is computed here from each token's FFN input.
    """

    def __init__(self, ffn: nn.Module, d_model: int, d_embed: int, adaptor: AdaptorConfig, router: RouterConfig):
        super().__init__()
        check_choices(adaptor)  # again here: a field may have been reassigned after the config was built
        check_choices(router)
        self.ffn = ffn
        self.d_model = d_model
        self.adaptor_cfg = adaptor
        self.router_cfg = router
        self.experts = nn.ModuleList()
        self.router = KeyedRouter(d_embed if router.mode == "kv_anchor" else d_model, router.dim)
        self.memory = AnchorMemory(d_embed if router.mode == "kv_anchor" else d_model)
        self.subjects = SubjectIndex()
        self.instance_gate: torch.Tensor | None = None
        self.register_buffer("thresholds", torch.zeros(0))  # εᵢ of the activation gate, one per expert
        self.decide_mask: torch.Tensor | None = None  # (B, T) prompt positions: decide the activation gate now
        self.enabled = True  # False: behave as the bare FFN (the unedited model)
        self.forced_expert: int | None = None  # training: every token goes to this expert
        self.capture_tokens: torch.Tensor | None = None  # token mode: (B, T) mask of inputs to keep
        self.captured: torch.Tensor | None = None

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def add_expert(self, generator: torch.Generator | None = None) -> int:
        """Freeze every existing expert and key, then add a new expert and key; returns its index."""
        for p in list(self.experts.parameters()) + list(self.router.keys.parameters()):
            p.requires_grad_(False)
        ref = self.router.up.weight
        expert = Expert(self.d_model, self.adaptor_cfg.expert_width, generator).to(ref)
        self.experts.append(expert)
        self.router.add_key(generator)
        self.thresholds = torch.cat([self.thresholds, self.thresholds.new_full((1,), float("-inf"))])
        return self.num_experts - 1

    def set_instance_gate(self, gate: torch.Tensor | None) -> None:
        """Gate (B, n_experts) used by the next forward passes (kv_anchor mode); None = no experts."""
        self.instance_gate = gate

    def _activation_gate(self, gate: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``gate`` with the rows whose routed expert's Δ on the prompt positions is below its εᵢ set to zero."""
        gate = gate.clone()
        for i in torch.nonzero(gate.abs().sum(0) > 0).flatten().tolist():
            rows = torch.nonzero(gate[:, i]).flatten()
            weak = activation(self.experts[i], x[rows], mask[rows]) < self.thresholds[i]
            gate[rows[weak]] = 0.0
        return gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ffn(x)
        if self.num_experts == 0 or not self.enabled:
            return out
        if self.router_cfg.mode == "token" and self.capture_tokens is not None and self.captured is None:
            self.captured = x[self.capture_tokens.to(x.device)].detach().float()
        if self.router_cfg.mode == "token" and self.forced_expert is not None:
            gate = torch.zeros(*x.shape[:-1], self.num_experts, device=x.device, dtype=x.dtype)
            gate[..., self.forced_expert] = 1.0
        elif self.router_cfg.mode == "token":
            gate = topk_gate(self.router.scores(x), self.router_cfg.top_k)  # (B, T, n)
        else:
            if self.instance_gate is None:
                return out
            if self.instance_gate.shape[0] != x.shape[0]:
                raise RuntimeError(
                    f"routing gate is for {self.instance_gate.shape[0]} instances but the input has {x.shape[0]}"
                )
            if self.decide_mask is not None and self.router_cfg.null_threshold == "activation":
                self.instance_gate = self._activation_gate(self.instance_gate, x, self.decide_mask.to(x.device))
                self.decide_mask = None  # kept for the cached decoding steps that follow
            gate = self.instance_gate[:, None, :].to(x.dtype)  # (B, 1, n)
        delta = torch.zeros_like(out)  # in the FFN output's dtype (bf16 under autocast, where x may be fp32)
        active = gate.flatten(0, -2).abs().sum(0) > 0
        for i in torch.nonzero(active).flatten().tolist():
            if gate.shape[1] == 1:  # instance-level gate: run expert i only on the instances routed to it
                rows = torch.nonzero(gate[:, 0, i]).flatten()
                routed = gate[rows, :, i : i + 1] * self.experts[i](x[rows])
                delta = delta.index_add(0, rows, routed.to(delta.dtype))
            else:
                delta = delta + (gate[..., i : i + 1] * self.experts[i](x)).to(delta.dtype)
        return out + self.adaptor_cfg.scale * delta
