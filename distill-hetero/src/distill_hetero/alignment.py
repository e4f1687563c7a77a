"""Alignment module: one trainable projector per mapped layer pair, student width -> teacher width.

The projectors are trained jointly with the student and live beside it (in the ``Distiller``),
so ``student.save_pretrained`` never exports them.
"""

from __future__ import annotations

from torch import nn

from distill_hetero.mapping import Mapping


def build_projector(kind: str, student_width: int, teacher_width: int) -> nn.Module:
    """``linear``: W h + b. ``mlp``: Linear(ds, dt) -> GELU -> Linear(dt, dt)."""
    if kind == "linear":
        return nn.Linear(student_width, teacher_width)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(student_width, teacher_width), nn.GELU(), nn.Linear(teacher_width, teacher_width)
        )
    raise ValueError(f"loss.projector={kind!r} is not one of linear, mlp")


def pair_key(student_layer: int, teacher_layer: int) -> str:
    return f"s{student_layer}_t{teacher_layer}"


class AlignmentModule(nn.Module):
    """Projectors keyed ``s{i}_t{j}`` for each ``(i, j)`` of the mapping."""

    def __init__(self, mapping: Mapping, student_width: int, teacher_width: int, kind: str = "linear"):
        super().__init__()
        self.mapping = list(mapping)
        self.projectors = nn.ModuleDict(
            {pair_key(s, t): build_projector(kind, student_width, teacher_width) for s, t in self.mapping}
        )

    def forward(self, student_layer: int, teacher_layer: int, hidden):
        return self.projectors[pair_key(student_layer, teacher_layer)](hidden)
