"""A student derived from the teacher by structured pruning: fewer decoder blocks and a narrower MLP.

Depth: ``Ls`` of the teacher's ``Lt`` blocks are kept, evenly spaced from the first to the last
(block ``round(i·(Lt−1)/(Ls−1))`` for student block i), so the ``uniform`` layer mapping aligns each
student block with a teacher layer at most one block away from the one it was copied from.
Width: in every kept block the MLP keeps
the ``intermediate_size`` channels c with the largest weight-norm score
‖W_gate[c,:]‖·‖W_up[c,:]‖·‖W_down[:,c]‖ (magnitude-based structured pruning of the gated MLP, as in
LLM-Pruner's channel groups, Ma et al. 2023, with the weight norm as the importance), in their
original order. Embeddings, attention, norms and the LM head are copied. The student thus starts
from pretrained weights and is heterogeneous in depth and MLP width.
"""

from __future__ import annotations

import copy

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
def prune_teacher(teacher: nn.Module, num_layers: int, intermediate_size: int = 0) -> nn.Module:
    """A trainable copy of ``teacher`` with ``num_layers`` blocks (:func:`kept_blocks`) and, when
    ``intermediate_size`` > 0, that many MLP channels per block (highest :func:`channel_scores`)."""
    student = copy.deepcopy(teacher)
    layer_list = decoder_layers(student)
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
