"""The distiller: student + alignment projectors + loss weights (all trainable), fed with the frozen
teacher's outputs, computed live or precomputed once per example (``TeacherCache``).

Total loss (the paper's joint objective):  L = sum_k w_k L_out_k + w_inter * (1/|M|) sum_{(i,j) in M}
d(P_ij h_s^i, h_t^j), with M the layer mapping, P_ij the projectors, d an intermediate loss and the
w's fixed, learned or set from the losses' history (``weighting.py``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from distill_hetero.alignment import AlignmentModule
from distill_hetero.config import LossConfig
from distill_hetero.cross_tokenizer import select_rows, span_mean_hidden
from distill_hetero.data import IGNORE, Example, collate
from distill_hetero.extraction import capture_hidden_states, hidden_width, selected_logits
from distill_hetero.losses import TeacherDistribution, get_intermediate_loss, get_output_loss
from distill_hetero.mapping import Mapping
from distill_hetero.weighting import build_weighting
from shared_utils.errors import ConfigError

INTER = "inter"
SAME_VOCABULARY_LOSSES = ("fkl", "rkl", "skl", "srkl")  # token-by-token: need one shared vocabulary


def supervised_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positions [B, S] bool, targets [N])``: position t predicts label t+1 when that is not ignored."""
    positions = torch.zeros_like(labels, dtype=torch.bool)
    positions[:, :-1] = labels[:, 1:] != IGNORE
    return positions, labels[:, 1:][labels[:, 1:] != IGNORE]


def token_mask(batch: dict[str, torch.Tensor], which: str) -> torch.Tensor:
    """Tokens whose hidden states are aligned: ``all`` real (non-padding) tokens or ``response`` tokens."""
    if which == "all":
        return batch["attention_mask"].bool()
    if which == "response":
        return batch["labels"] != IGNORE
    raise ValueError(f"loss.intermediate_tokens={which!r} is not one of all, response")


@dataclass
class TeacherOutputs:
    """What the losses need from the teacher for one batch."""

    dist: TeacherDistribution | None = None
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)


@torch.no_grad()
def teacher_forward(
    teacher: nn.Module, batch: dict[str, torch.Tensor], layers: list[int], vocab_size: int
) -> TeacherOutputs:
    """One frozen forward pass: logits at the supervised positions, hidden states of ``layers`` only."""
    positions, _ = supervised_positions(batch["labels"])
    with capture_hidden_states(teacher, layers) as hidden:
        logits = selected_logits(teacher, batch["input_ids"], batch["attention_mask"], positions)[:, :vocab_size]
    return TeacherOutputs(TeacherDistribution(logits=logits), {k: hidden[k] for k in layers})


class TeacherCache:
    """Teacher outputs precomputed once per training example: the top-k log-probabilities (at the loss
    temperature) at its supervised positions and the mapped layers' hidden states (fp16). Reused for
    every epoch and every run on the same data, so the teacher's cost is paid once."""

    def __init__(
        self,
        teacher: nn.Module,
        examples: list[Example],
        layers: list[int],
        top_k: int,
        temperature: float,
        vocab_size: int,
        pad_id: int,
        batch_size: int = 16,
    ):
        self.layers, self.top_k = list(layers), top_k
        self.entries: dict[int, tuple] = {}
        self._digest: str | None = None
        device = next(teacher.parameters()).device
        covered = []
        for start in tqdm(range(0, len(examples), batch_size), desc="teacher cache", leave=False):
            chunk = examples[start : start + batch_size]
            batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
            out = teacher_forward(teacher, batch, self.layers, vocab_size)
            logprobs = torch.log_softmax(out.dist.logits.float() / temperature, dim=-1)
            top_lp, top_ids = logprobs.topk(top_k, dim=-1)
            covered.append(top_lp.exp().sum(-1))
            counts = (batch["labels"][:, 1:] != IGNORE).sum(1).tolist()
            offsets = [0, *torch.tensor(counts).cumsum(0).tolist()]
            for row, example in enumerate(chunk):
                n = len(example.input_ids)
                rows = slice(offsets[row], offsets[row + 1])
                hidden = [out.hidden[k][row, :n].to(torch.float16).cpu() for k in self.layers]
                self.entries[example.index] = (top_lp[rows].cpu(), top_ids[rows].cpu(), hidden)
        self.mean_covered_mass = float(torch.cat(covered).mean())

    def digest(self) -> str:
        """sha256 of every cached tensor's bytes (examples in index order): two runs whose teacher
        outputs differ in a single bit have different digests, so a rerun can tell from the results
        files alone whether its teacher cache was the committed run's (issue 13 item 3)."""
        if self._digest is not None:  # the entries never change after construction
            return self._digest
        sha = hashlib.sha256()
        for index in sorted(self.entries):
            top_lp, top_ids, hidden = self.entries[index]
            for tensor in (top_lp, top_ids, *hidden):
                sha.update(tensor.contiguous().numpy().tobytes())
        self._digest = sha.hexdigest()
        return self._digest

    def __call__(self, batch: dict[str, torch.Tensor]) -> TeacherOutputs:
        device = batch["input_ids"].device
        entries = [self.entries[int(i)] for i in batch["index"]]
        dist = TeacherDistribution(
            topk_logprobs=torch.cat([e[0] for e in entries]).to(device),
            topk_ids=torch.cat([e[1] for e in entries]).to(device),
        )
        hidden = {}
        batch_size, width = batch["input_ids"].shape
        for slot, layer in enumerate(self.layers):
            dim = entries[0][2][slot].shape[-1]
            padded = torch.zeros(batch_size, width, dim, dtype=torch.float32, device=device)
            for row, e in enumerate(entries):
                padded[row, : e[2][slot].shape[0]] = e[2][slot].to(device, torch.float32)
            hidden[layer] = padded
        return TeacherOutputs(dist, hidden)


class Distiller(nn.Module):
    """Trainable part of the method: the student, the alignment projectors and the loss weights."""

    def __init__(
        self,
        student: nn.Module,
        loss: LossConfig,
        mapping: Mapping,
        teacher_width: int,
        vocab_size: int,
        cross_tokenizer: bool = False,
    ):
        super().__init__()
        if not loss.output and not loss.intermediate:
            raise ConfigError("no loss selected: set loss.output and/or loss.intermediate")
        if cross_tokenizer and set(loss.output) & set(SAME_VOCABULARY_LOSSES):
            raise ConfigError(
                f"loss.output={loss.output}: {', '.join(SAME_VOCABULARY_LOSSES)} need one shared vocabulary; with "
                "student.tokenizer set use ce and uld (Universal Logit Distillation)"
            )
        self.student, self.cfg, self.vocab_size, self.cross = student, loss, vocab_size, cross_tokenizer
        self.output_losses = {name: get_output_loss(name) for name in loss.output}
        self.mapping = list(mapping) if loss.intermediate else []
        self.inter_loss = get_intermediate_loss(loss.intermediate) if loss.intermediate else None
        if self.inter_loss is not None and not self.mapping:
            raise ConfigError("loss.intermediate is set but the layer mapping is empty")
        self.align = (
            AlignmentModule(self.mapping, hidden_width(student), teacher_width, loss.projector)
            if self.inter_loss
            else None
        )
        self.loss_names = list(loss.output) + ([INTER] if self.inter_loss else [])
        self.weighting = build_weighting(loss, self.loss_names)

    @property
    def teacher_layers(self) -> list[int]:
        return sorted({t for _, t in self.mapping})

    @property
    def needs_teacher(self) -> bool:
        return self.inter_loss is not None or any(name != "ce" for name in self.output_losses)

    def forward(self, batch: dict[str, torch.Tensor], teacher: TeacherOutputs | None = None):
        """``(total loss, {loss name: value})`` for one batch. With a cross-tokenizer student the batch
        also carries the ULD row pairs and the character-span alignment (``CrossTokenizerData.batch``):
        the teacher-based output losses see the paired rows, and each student token is aligned with the
        span mean of the teacher's hidden states."""
        positions, targets = supervised_positions(batch["labels"])
        student_layers = [s for s, _ in self.mapping]
        with capture_hidden_states(self.student, student_layers) as hidden:
            logits = selected_logits(self.student, batch["input_ids"], batch["attention_mask"], positions)
        logits = logits[:, : self.vocab_size]
        dist = teacher.dist if teacher is not None else None
        losses = {}
        for name, fn in self.output_losses.items():
            if self.cross and name != "ce":
                paired = select_rows(dist, batch["uld_teacher_rows"])
                losses[name] = fn(logits[batch["uld_student_rows"]], None, paired, self.cfg.temperature)
            else:
                losses[name] = fn(logits, targets, dist, self.cfg.temperature, self.cfg.skew_alpha)
        if self.inter_loss is not None:
            mask = token_mask(batch, self.cfg.intermediate_tokens)
            per_pair = []
            for s, t in self.mapping:
                if self.cross:
                    target, aligned = span_mean_hidden(teacher.hidden[t], batch, mask.shape)
                    keep = mask.reshape(-1) & aligned
                    student_h = hidden[s].reshape(-1, hidden[s].shape[-1])[keep]
                    per_pair.append(self.inter_loss(self.align(s, t, student_h), target[keep]))
                else:
                    per_pair.append(self.inter_loss(self.align(s, t, hidden[s][mask]), teacher.hidden[t][mask]))
            losses[INTER] = torch.stack(per_pair).mean()
        return self.weighting(losses), losses
