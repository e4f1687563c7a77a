"""Token-level losses need teacher and student to share one vocabulary: the check lives here.

A student with its own vocabulary (``student.tokenizer``) goes through
:mod:`distill_hetero.cross_tokenizer` instead (ULD and character-span alignment).
"""

from __future__ import annotations


class VocabularyMismatchError(ValueError):
    """Teacher and student tokenizers do not agree token for token."""


def check_vocabularies(
    teacher_tokenizer, student_tokenizer, teacher_vocab_size: int | None = None, student_vocab_size: int | None = None
) -> int:
    """Return the shared vocabulary size, or raise naming the first differing tokens.

    ``*_vocab_size`` are the models' output sizes (embedding rows), which may be padded beyond the
    tokenizer; both must cover every token id of the tokenizer.
    """
    teacher_vocab, student_vocab = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()
    if teacher_vocab != student_vocab:
        only_t = sorted(set(teacher_vocab) - set(student_vocab))[:5]
        only_s = sorted(set(student_vocab) - set(teacher_vocab))[:5]
        moved = sorted(k for k in set(teacher_vocab) & set(student_vocab) if teacher_vocab[k] != student_vocab[k])[:5]
        raise VocabularyMismatchError(
            f"teacher and student vocabularies differ (teacher {len(teacher_vocab)} tokens, student "
            f"{len(student_vocab)}; only in teacher: {only_t}, only in student: {only_s}, different ids: {moved}). "
            "Token-level distillation needs the same tokenizer; for a student with its own vocabulary set "
            "student.tokenizer (cross-tokenizer: loss.output ce/uld)."
        )
    size = len(teacher_vocab)
    for who, rows in (("teacher", teacher_vocab_size), ("student", student_vocab_size)):
        if rows is not None and rows < size:
            raise VocabularyMismatchError(f"the {who} model has {rows} output rows but the tokenizer has {size} tokens")
    return size
