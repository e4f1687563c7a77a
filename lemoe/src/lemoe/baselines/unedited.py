"""The unedited model as a row: the trivial baseline every editing table is read against.

It takes every batch of edits and changes nothing, so its Rel and Gen say how much of the targets
the base model already predicts, its Loc is 1 by construction and its fluency is the reference.
"""

from __future__ import annotations

from lemoe.data import EditRequest
from lemoe.training import SequentialEditor


class UneditedEditor(SequentialEditor):
    """Scores the base model through the same harness; :meth:`edit` records an empty batch."""

    name = "unedited"

    def edit(self, requests: list[EditRequest]) -> dict[str, float]:
        if not requests:
            raise ValueError("edit() needs at least one request")
        record = {
            "batch": len(self.history) + 1,
            "edits": len(requests),
            "sequences": 0,
            "steps": 0,
            "nll": float("nan"),
            "train_s": 0.0,
        }
        self.history.append(record)
        return record
