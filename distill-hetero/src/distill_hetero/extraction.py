"""Extract only what the losses need from a causal LM: the hidden states of the mapped layers
(forward hooks, nothing else kept) and the logits at the supervised positions only."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from shared_utils.models import decoder_layers


def num_layers(model: nn.Module) -> int:
    """Depth of a HF causal LM (``num_hidden_layers``; GPT-2's ``n_layer`` is aliased to it)."""
    return int(model.config.num_hidden_layers)


def hidden_width(model: nn.Module) -> int:
    return int(model.config.hidden_size)


@contextmanager
def capture_hidden_states(model: nn.Module, layers: list[int]):
    """Record, during the forward passes inside the block, the outputs of ``layers``
    (0 = token embedding output, i = output of block i, before any final norm).

    Yields a dict ``layer -> tensor [batch, seq, width]`` filled by the next forward pass.
    """
    store: dict[int, torch.Tensor] = {}
    blocks = decoder_layers(model)
    handles = []

    def hook_for(layer: int):
        def hook(_module, _inputs, output):
            store[layer] = output[0] if isinstance(output, tuple) else output

        return hook

    try:
        for layer in sorted(set(layers)):
            module = model.get_input_embeddings() if layer == 0 else blocks[layer - 1]
            handles.append(module.register_forward_hook(hook_for(layer)))
        yield store
    finally:
        for handle in handles:
            handle.remove()


def selected_logits(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
) -> torch.Tensor:
    """Logits ``[n_selected, vocab]`` at the positions where ``positions`` (bool ``[batch, seq]``) is
    true, in row-major order. The LM head runs on those positions only, which saves most of its
    cost when the loss covers the response tokens alone."""
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return model.get_output_embeddings()(hidden[positions])
