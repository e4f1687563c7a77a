"""FT-L: fine-tune the FFN of the edited layer, batch after batch, on the target-token NLL."""

from __future__ import annotations

from torch import nn

from lemoe.adaptor import ffn_path, get_submodule
from lemoe.config import AdaptorConfig, TrainConfig
from lemoe.data import EditRequest
from lemoe.training import SequentialEditor


class FTLEditor(SequentialEditor):
    """Sequential FT-L on ``module`` ('down_proj'/'c_proj'/..., or 'all' = the whole FFN) of the layer."""

    name = "ft_l"

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        adaptor: AdaptorConfig,
        train: TrainConfig,
        lr: float,
        module: str = "down_proj",
    ):
        super().__init__(model, tokenizer, adaptor.layer, train, lr)
        ffn = get_submodule(model, ffn_path(model, adaptor))
        if module == "all":
            self.target = ffn
        elif hasattr(ffn, module):
            self.target = getattr(ffn, module)
        else:
            names = [n for n, _ in ffn.named_children()]
            raise ValueError(f"baselines.ftl_module={module!r} is not a sub-module of the FFN (has {names} or 'all')")

    def _begin_batch(self, requests: list[EditRequest]) -> list[nn.Parameter]:
        params = list(self.target.parameters())
        for p in params:
            p.requires_grad_(True)
        return params

    def _end_batch(self) -> None:
        for p in self.target.parameters():
            p.requires_grad_(False)
