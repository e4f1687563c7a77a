"""A student derived from the teacher by structured pruning: fewer decoder blocks and a narrower MLP.

Depth: ``Ls`` of the teacher's ``Lt`` blocks are kept: the blocks given in ``student.keep_blocks``
(the default config lists the blocks of highest :func:`block_influence` on training prompts, ShortGPT's
"Block Influence", Men et al. 2024: blocks that change the hidden state least are dropped), else evenly
spaced from the first to the last (block ``round(i·(Lt−1)/(Ls−1))`` for student block i).
Width: in every kept block the MLP keeps
the ``intermediate_size`` channels c with the largest weight-norm score
‖W_gate[c,:]‖·‖W_up[c,:]‖·‖W_down[:,c]‖ (magnitude-based structured pruning of the gated MLP, as in
LLM-Pruner's channel groups, Ma et al. 2023, with the weight norm as the importance), in their
original order. Embeddings, attention, norms and the LM head are copied. The student thus starts
from pretrained weights and is heterogeneous in depth and MLP width.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from shared_utils.errors import ConfigError
from shared_utils.models import decoder_layers, decoder_layers_path


def kept_blocks(teacher_layers: int, student_layers: int) -> list[int]:
    """Indices (0-based) of the teacher blocks kept: evenly spaced from the first to the last (both kept:
    the first blocks build the residual stream every later block relies on)."""
    if not 0 < student_layers <= teacher_layers:
        raise ConfigError(f"student.num_layers={student_layers} must be in 1..{teacher_layers} (the teacher's depth)")
    if student_layers == 1:
        return [teacher_layers - 1]
    return [round(i * (teacher_layers - 1) / (student_layers - 1)) for i in range(student_layers)]


def check_keep_blocks(teacher_layers: int, keep: list[int]) -> list[int]:
    """``keep`` as sorted distinct block indices inside the teacher, else a :class:`ConfigError`."""
    blocks = sorted({int(b) for b in keep})
    if len(blocks) != len(keep) or not all(0 <= b < teacher_layers for b in blocks):
        raise ConfigError(
            f"student.keep_blocks={list(keep)} must be distinct teacher block indices in 0..{teacher_layers - 1}"
        )
    return blocks


@torch.no_grad()
def block_influence(teacher: nn.Module, batches) -> list[float]:
    """Per teacher block, 1 − cos(h_in, h_out) averaged over the real tokens of ``batches`` (dicts with
    ``input_ids`` and ``attention_mask``): ShortGPT's Block Influence (Men et al. 2024). A block with a low
    value barely changes the residual stream, so dropping it changes the teacher least."""
    totals: torch.Tensor | None = None
    count = 0
    for batch in batches:
        out = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        mask = batch["attention_mask"].bool()
        hidden = [h[mask].float() for h in out.hidden_states]
        values = torch.stack(
            [(1 - nn.functional.cosine_similarity(a, b, dim=-1)).sum() for a, b in itertools.pairwise(hidden)]
        )
        totals = values if totals is None else totals + values
        count += int(mask.sum())
    if totals is None or count == 0:
        raise ConfigError("block_influence needs at least one non-empty batch")
    return (totals / count).tolist()


def most_influential(influence: list[float], num_layers: int) -> list[int]:
    """The ``num_layers`` blocks of highest influence, in stack order (ties: the earlier block)."""
    order = sorted(range(len(influence)), key=lambda i: (-influence[i], i))
    return sorted(order[:num_layers])


def channel_scores(mlp: nn.Module) -> torch.Tensor:
    """Importance of each MLP channel: ‖W_gate[c,:]‖·‖W_up[c,:]‖·‖W_down[:,c]‖."""
    for name in ("gate_proj", "up_proj", "down_proj"):
        if not hasattr(mlp, name):
            raise ConfigError(
                f"student.init=teacher_prune needs a gated MLP (gate_proj/up_proj/down_proj); "
                f"{type(mlp).__name__} has no {name}"
            )
    return (
        mlp.gate_proj.weight.norm(dim=1) * mlp.up_proj.weight.norm(dim=1) * mlp.down_proj.weight.norm(dim=0)
    ).float()


def _narrow(linear: nn.Linear, keep: torch.Tensor, dim: int) -> None:
    linear.weight = nn.Parameter(linear.weight.index_select(dim, keep).clone())
    if linear.bias is not None and dim == 0:
        linear.bias = nn.Parameter(linear.bias[keep].clone())
    linear.in_features, linear.out_features = linear.weight.shape[1], linear.weight.shape[0]


@torch.no_grad()
def prune_teacher(
    teacher: nn.Module, num_layers: int, intermediate_size: int = 0, keep_blocks: list[int] | None = None
) -> nn.Module:
    """A trainable copy of ``teacher`` with ``num_layers`` blocks (``keep_blocks`` when given, else
    :func:`kept_blocks`) and, when ``intermediate_size`` > 0, that many MLP channels per block (highest
    :func:`channel_scores`)."""
    student = copy.deepcopy(teacher)
    layer_list = decoder_layers(student)
    if keep_blocks:
        keep = check_keep_blocks(len(layer_list), keep_blocks)
        if len(keep) != num_layers:
            raise ConfigError(
                f"student.keep_blocks lists {len(keep)} blocks but student.num_layers={num_layers}; make them agree"
            )
    else:
        keep = kept_blocks(len(layer_list), num_layers)
    kept = nn.ModuleList([layer_list[i] for i in keep])
    for new_index, block in enumerate(kept):
        if hasattr(block, "self_attn") and hasattr(block.self_attn, "layer_idx"):
            block.self_attn.layer_idx = new_index  # the KV cache is indexed by position in the stack
    student.set_submodule(decoder_layers_path(student), kept)
    student.config.num_hidden_layers = num_layers
    if getattr(student.config, "layer_types", None):
        student.config.layer_types = [student.config.layer_types[i] for i in keep]
    if intermediate_size:
        full = student.config.intermediate_size
        if not 0 < intermediate_size <= full:
            raise ConfigError(f"student.intermediate_size={intermediate_size} must be in 1..{full} (the teacher's)")
        for block in kept:
            channels = channel_scores(block.mlp).topk(intermediate_size).indices.sort().values
            _narrow(block.mlp.gate_proj, channels, 0)
            _narrow(block.mlp.up_proj, channels, 0)
            _narrow(block.mlp.down_proj, channels, 1)
        student.config.intermediate_size = intermediate_size
    student.requires_grad_(True)
    return student
