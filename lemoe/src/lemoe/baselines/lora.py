"""LoRA (peft) on the FFN of the edited layer, one adapter trained sequentially over the batches."""

from __future__ import annotations

from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from lemoe.adaptor import ffn_path, get_submodule
from lemoe.config import AdaptorConfig, TrainConfig
from lemoe.data import EditRequest
from lemoe.training import SequentialEditor


class LoRAEditor(SequentialEditor):
    """peft LoRA adapters injected (in place) into every linear layer of the edited layer's FFN."""

    name = "lora"

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        adaptor: AdaptorConfig,
        train: TrainConfig,
        lr: float,
        rank: int = 8,
        alpha: int = 16,
    ):
        super().__init__(model, tokenizer, adaptor.layer, train, lr)
        path = ffn_path(model, adaptor)
        ffn = get_submodule(model, path)
        names = [f"{path}.{n}" for n, m in ffn.named_modules() if n and type(m).__name__ in ("Linear", "Conv1D")]
        if not names:
            raise ValueError(f"LoRA: no linear layer inside {path} (adaptor.module_path)")
        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            lora_dropout=0.0,
            target_modules=names,
            fan_in_fan_out=type(get_submodule(model, names[0])).__name__ == "Conv1D",
        )
        inject_adapter_in_model(config, model)
        self.lora_params = [p for n, p in model.named_parameters() if "lora_" in n]
        for p in self.lora_params:
            p.requires_grad_(False)

    def _begin_batch(self, requests: list[EditRequest]) -> list[nn.Parameter]:
        for p in self.lora_params:
            p.requires_grad_(True)
        return self.lora_params

    def _end_batch(self) -> None:
        for p in self.lora_params:
            p.requires_grad_(False)
