"""Baselines run in the same harness as LEMoE: FT-L, LoRA, GRACE, WISE, AlphaEdit and the unedited model
(token-level MoE routing is ``LEMoEEditor`` with ``router.mode='token'``)."""

from lemoe.baselines.alphaedit import AlphaEditEditor
from lemoe.baselines.ftl import FTLEditor
from lemoe.baselines.grace import GRACEEditor
from lemoe.baselines.lora import LoRAEditor
from lemoe.baselines.unedited import UneditedEditor
from lemoe.baselines.wise import WISEEditor

__all__ = ["AlphaEditEditor", "FTLEditor", "GRACEEditor", "LoRAEditor", "UneditedEditor", "WISEEditor"]
