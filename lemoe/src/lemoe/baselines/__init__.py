"""Baselines run in the same harness as LEMoE: FT-L and LoRA (token-level MoE routing is
``LEMoEEditor`` with ``router.mode='token'``)."""

from lemoe.baselines.ftl import FTLEditor
from lemoe.baselines.lora import LoRAEditor

__all__ = ["FTLEditor", "LoRAEditor"]
