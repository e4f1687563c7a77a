"""GRACE (Hartvigsen et al., NeurIPS 2023): a codebook of key/value entries beside one FFN.

Each edit owns an entry (key kᵢ, value vᵢ, radius εᵢ, label yᵢ). The key of an input is the FFN
input at its last prompt token; when the nearest key is within its radius (Euclidean), the FFN
output is *replaced* by that entry's value at the last prompt token and every later position
(the positions that predict the answer), otherwise the FFN runs unchanged. On an edit with key h
and target y, against the nearest entry j at distance d:

- d > εⱼ + ε_init: add an entry (h, v, ε_init, y);
- same label (yⱼ = y): expand, εⱼ = max(εⱼ, d);
- other label: split, εⱼ = d/2 and add (h, v, d/2, y).

A new value starts at the FFN output at the key position and is trained on the target NLL
(the same loop, step budget and early stop as every method here); other entries do not move.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from lemoe.adaptor import ffn_path, get_submodule
from lemoe.config import AdaptorConfig, TrainConfig
from lemoe.data import EditRequest
from lemoe.training import SequentialEditor, encode_pairs, fresh_forward_inputs


class GRACECodebook(nn.Module):
    """Wraps an FFN; replaces its output by a codebook value for inputs whose key falls in an entry's ball."""

    def __init__(self, ffn: nn.Module, d_model: int):
        super().__init__()
        self.ffn = ffn
        self.register_buffer("keys", torch.zeros(0, d_model))
        self.register_buffer("radii", torch.zeros(0))
        self.values = nn.Parameter(torch.zeros(0, d_model), requires_grad=False)
        self.labels: list[str] = []
        self.key_positions: torch.Tensor | None = None  # (B,) set before a fresh forward
        self.forced_entries: torch.Tensor | None = None  # training: entry per instance
        self.entries: torch.Tensor | None = None  # decision kept for cached decoding steps
        self.captured: tuple[torch.Tensor, torch.Tensor] | None = None  # (key, FFN output) at key positions
        self.capture = False

    def __len__(self) -> int:
        return self.keys.shape[0]

    def add(self, key: torch.Tensor, value: torch.Tensor, radius: float, label: str) -> int:
        self.keys = torch.cat([self.keys, key[None].to(self.keys)])
        self.radii = torch.cat([self.radii, torch.tensor([radius], device=self.radii.device)])
        self.values = nn.Parameter(torch.cat([self.values.data, value[None].to(self.values)]), requires_grad=False)
        self.labels.append(label)
        return len(self) - 1

    def place(self, key: torch.Tensor, output: torch.Tensor, label: str, eps_init: float) -> int:
        """Give one edit (key, FFN output at the key, label) its entry: add, expand or split; returns the entry."""
        if len(self) == 0:
            return self.add(key, output, eps_init, label)
        dist = (self.keys - key.to(self.keys)).norm(dim=-1)
        j = int(dist.argmin())
        d = float(dist[j])
        if d > float(self.radii[j]) + eps_init:
            return self.add(key, output, eps_init, label)
        if self.labels[j] == label:
            self.radii[j] = max(float(self.radii[j]), d)
            return j
        self.radii[j] = d / 2
        return self.add(key, output, d / 2, label)

    def lookup(self, queries: torch.Tensor) -> torch.Tensor:
        """Entry whose ball holds each query (the nearest key), -1 where none does."""
        if len(self) == 0:
            return torch.full((queries.shape[0],), -1, dtype=torch.long, device=queries.device)
        dist = torch.cdist(queries.float(), self.keys.float())
        nearest, idx = dist.min(-1)
        return torch.where(nearest <= self.radii[idx], idx, torch.full_like(idx, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ffn(x)
        positions, self.key_positions = self.key_positions, None  # later forwards are cached decoding steps
        if positions is not None:  # a fresh pass over the prompt
            rows, positions = torch.arange(x.shape[0], device=x.device), positions.to(x.device)
            queries = x[rows, positions]
            if self.capture:
                self.captured = (queries.detach().float(), out[rows, positions].detach().float())
                return out
            self.entries = self.forced_entries if self.forced_entries is not None else self.lookup(queries)
            after_key = torch.arange(x.shape[1], device=x.device)[None] >= positions[:, None]
        elif self.entries is not None:  # cached decoding: every new position is past the key
            after_key = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        else:
            return out
        hit = (self.entries >= 0)[:, None] & after_key
        if not hit.any():
            return out
        values = self.values[self.entries.clamp_min(0)].to(out.dtype)[:, None, :]
        return torch.where(hit[..., None], values, out)


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of ``mask`` (the last prompt token, whatever the padding side)."""
    positions = torch.arange(mask.shape[1], device=mask.device)[None].expand_as(mask)
    return torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(-1).values


class GRACEEditor(SequentialEditor):
    """Sequential GRACE on the FFN of the adaptor layer; ``editor.model`` works with ``generate``."""

    name = "grace"

    def __init__(
        self, model: nn.Module, tokenizer, adaptor: AdaptorConfig, train: TrainConfig, lr: float, eps_init: float
    ):
        super().__init__(model, tokenizer, adaptor.layer, train, lr)
        path = ffn_path(model, adaptor)
        ffn = get_submodule(model, path)
        ref = next(ffn.parameters())
        self.codebook = GRACECodebook(ffn, model.get_input_embeddings().weight.shape[1]).to(ref.device)
        model.set_submodule(path, self.codebook)
        self.eps_init = eps_init
        self._batch_entries: torch.Tensor | None = None
        self._in_routing = False
        model.register_forward_pre_hook(self._key_hook, with_kwargs=True)

    def _key_hook(self, _module, args, kwargs):
        """Plain ``model(...)`` / ``generate``: the key is the last prompt token of a fresh forward."""
        inputs = None if self._in_routing else fresh_forward_inputs(args, kwargs)
        if inputs is not None:
            mask = inputs[1]
            self.codebook.key_positions = None if mask is None else last_positions(mask)
        return None

    def _keys_of(self, requests: list[EditRequest]) -> tuple[torch.Tensor, torch.Tensor]:
        enc = encode_pairs(self.tokenizer, [r.prompt for r in requests], [r.target for r in requests], self.device)
        book = self.codebook
        book.capture, book.captured = True, None
        try:
            with self._forward(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"]), torch.no_grad():
                self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], use_cache=False)
        finally:
            book.capture = False
        return book.captured

    def _begin_batch(self, requests: list[EditRequest]) -> list[nn.Parameter]:
        """Update the codebook edit by edit (add / expand / split), then train the values used."""
        keys, outputs = self._keys_of(requests)
        entries = [
            self.codebook.place(key, output, request.target.strip(), self.eps_init)
            for key, output, request in zip(keys, outputs, requests, strict=True)
        ]
        self._batch_entries = torch.tensor(entries, device=self.device)
        self.codebook.values.requires_grad_(True)
        return [self.codebook.values]

    def _end_batch(self) -> None:
        self.codebook.values.requires_grad_(False)
        self._batch_entries = None

    @contextmanager
    def _keyed(self, positions: torch.Tensor | None, forced: torch.Tensor | None) -> Iterator[None]:
        """Key positions (None: no entry fires) and, in training, each instance's entry, around one forward."""
        book = self.codebook
        self._in_routing = True
        book.key_positions, book.forced_entries, book.entries = positions, forced, None
        try:
            yield
        finally:
            self._in_routing = False
            book.key_positions = book.forced_entries = book.entries = None

    def _routing(self, input_ids, attention_mask, prompt_mask, training: bool = False):
        mask = prompt_mask if prompt_mask is not None else attention_mask
        return self._keyed(last_positions(mask), self._batch_entries if training else None)

    def detached(self):
        """Run the model as if unedited (no entry fires) inside the block."""
        return self._keyed(None, None)
