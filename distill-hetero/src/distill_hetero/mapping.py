"""Layer-mapping rules between a student of depth Ls and a teacher of depth Lt.

Layer 0 is the output of the token embedding, layer i (1..L) the output of decoder block i.
A mapping is a list of ``(student_layer, teacher_layer)`` pairs, in student order.
"""

from __future__ import annotations

import math

from distill_hetero.config import MappingConfig
from shared_utils.errors import ConfigError

Mapping = list[tuple[int, int]]


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def uniform(num_student: int, num_teacher: int, include_embedding: bool = True) -> Mapping:
    """Student layer i <-> teacher layer round(i * Lt / Ls), i = 0..Ls: embeddings (0 <-> 0) and last
    layers (Ls <-> Lt) are pinned by construction; ties round up."""
    start = 0 if include_embedding else 1
    return [(i, _round_half_up(i * num_teacher / num_student)) for i in range(start, num_student + 1)]


def last_k(num_student: int, num_teacher: int, k: int) -> Mapping:
    """The last k student blocks <-> the last k teacher blocks, in order."""
    if not 1 <= k <= min(num_student, num_teacher):
        raise ConfigError(f"mapping.k={k} must be in 1..min(Ls={num_student}, Lt={num_teacher}) for rule last-k")
    return [(num_student - k + j, num_teacher - k + j) for j in range(1, k + 1)]


def skip(num_student: int, num_teacher: int, k: int) -> Mapping:
    """Every k-th student block (k, 2k, ..., and always the last) <-> teacher round(i * Lt / Ls)."""
    if not 1 <= k <= num_student:
        raise ConfigError(f"mapping.k={k} must be in 1..Ls={num_student} for rule skip")
    layers = sorted(set(range(k, num_student + 1, k)) | {num_student})
    return [(i, _round_half_up(i * num_teacher / num_student)) for i in layers]


def explicit(num_student: int, num_teacher: int, pairs: list[list[int]]) -> Mapping:
    """A user-given list of ``[student_layer, teacher_layer]`` pairs, checked against both depths."""
    if not pairs:
        raise ConfigError("mapping.pairs is empty: rule explicit needs [[student_layer, teacher_layer], ...]")
    mapping = []
    for n, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ConfigError(f"mapping.pairs[{n}]={pair!r} must be [student_layer, teacher_layer]")
        s, t = int(pair[0]), int(pair[1])
        if not 0 <= s <= num_student:
            raise ConfigError(f"mapping.pairs[{n}]: student layer {s} is outside 0..{num_student}")
        if not 0 <= t <= num_teacher:
            raise ConfigError(f"mapping.pairs[{n}]: teacher layer {t} is outside 0..{num_teacher}")
        mapping.append((s, t))
    return mapping


def resolve_mapping(config: MappingConfig, num_student: int, num_teacher: int) -> Mapping:
    """The mapping chosen by ``config.rule`` for the given depths."""
    if config.rule == "uniform":
        return uniform(num_student, num_teacher, config.include_embedding)
    if config.rule == "last-k":
        return last_k(num_student, num_teacher, config.k)
    if config.rule == "skip":
        return skip(num_student, num_teacher, config.k)
    return explicit(num_student, num_teacher, config.pairs)
