"""PEFT methods through ``peft`` (LoRA, IA3, prompt tuning, prefix tuning) and full fine-tuning.

Also the model-side helpers every measurement uses: a forward pass whose outputs are aligned
with the input positions (prompt tuning prepends virtual tokens), the base-model view through
peft's ``disable_adapter`` (no second model copy), atomic ``save_pretrained``, loading back,
and ``merge_and_unload``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from semantic_peft.config import PEFT_METHODS, PeftSettings
from semantic_peft.data import Encoded
from shared_utils.atomic import atomic_folder
from shared_utils.errors import ConfigError
from shared_utils.tracking import get_logger

logger = get_logger(__name__)


class TargetModulesError(ConfigError):
    """``peft.target_modules`` names modules the model does not have."""


def _matches(module_name: str, target: str) -> bool:
    return module_name == target or module_name.endswith("." + target)


def check_target_modules(model: torch.nn.Module, targets: list[str] | None) -> dict[str, list[str]]:
    """Map each requested target to the module names it matches (peft's suffix rule).

    Raises :class:`TargetModulesError` naming every target that matches nothing, with the
    leaf names of the model's linear layers to choose from.
    """
    if targets is None:
        return {}
    names = [name for name, _ in model.named_modules()]
    resolved = {t: [n for n in names if _matches(n, t)] for t in targets}
    missing = [t for t, found in resolved.items() if not found]
    if missing:
        leaves = sorted(
            {
                n.rsplit(".", 1)[-1]
                for n, m in model.named_modules()
                if isinstance(m, torch.nn.Linear) or type(m).__name__ == "Conv1D"
            }
        )
        raise TargetModulesError(
            f"peft.target_modules {missing} match no module of {type(model).__name__}; "
            f"its linear layers are named: {', '.join(leaves)}"
        )
    return resolved


def build_peft_config(settings: PeftSettings) -> Any:
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

    method = settings.method
    if method == "lora":
        return LoraConfig(
            task_type=TaskType.CAUSAL_LM,
            r=settings.r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=settings.target_modules,
            layers_to_transform=settings.layers_to_transform,
        )
    if method == "ia3":
        if settings.layers_to_transform is not None:
            raise ConfigError("peft.layers_to_transform is not supported by IA3 in peft; leave it unset")
        return IA3Config(
            task_type=TaskType.CAUSAL_LM,
            target_modules=settings.target_modules,
            feedforward_modules=settings.feedforward_modules,
        )
    if method == "prompt_tuning":
        return PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=settings.num_virtual_tokens)
    if method == "prefix_tuning":
        return PrefixTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=settings.num_virtual_tokens)
    raise ConfigError(f"peft.method must be one of {PEFT_METHODS}, got {method!r}")


def adapted_module_names(model: torch.nn.Module) -> list[str]:
    """Names of the modules peft wrapped with an adapter layer (LoRA/IA3)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [name for name, module in model.named_modules() if isinstance(module, BaseTunerLayer)]


def wrap_model(model: torch.nn.Module, settings: PeftSettings) -> torch.nn.Module:
    """Attach the configured method; ``full`` trains every parameter of ``model`` itself.

    The resolved target modules are logged; a target that matches nothing raises
    :class:`TargetModulesError` before peft is called.
    """
    if settings.method == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        logger.info("full fine-tuning: %d trainable parameters", sum(p.numel() for p in model.parameters()))
        return model
    if settings.method in ("lora", "ia3"):
        check_target_modules(model, settings.target_modules)
    from peft import get_peft_model

    peft_model = get_peft_model(model, build_peft_config(settings))
    if settings.method in ("lora", "ia3"):
        wrapped = adapted_module_names(peft_model)
        if not wrapped:
            raise TargetModulesError(
                f"peft.method={settings.method} attached no adapter layer "
                f"(target_modules={settings.target_modules}, "
                f"layers_to_transform={settings.layers_to_transform})"
            )
        leaves = sorted({n.rsplit(".", 1)[-1] for n in wrapped})
        logger.info("%s on %d modules (%s)", settings.method, len(wrapped), ", ".join(leaves))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    logger.info("%s: %d trainable parameters", settings.method, trainable)
    return peft_model


def is_peft(model: torch.nn.Module) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


@contextlib.contextmanager
def adapter_disabled(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The base model's view of a peft model (peft's ``disable_adapter``), no copy made."""
    if not is_peft(model):
        raise TypeError(
            "adapter_disabled needs a peft model; a fully fine-tuned model has no base view "
            "(measure it before training)"
        )
    with model.disable_adapter():
        yield model


def forward(model: torch.nn.Module, enc: Encoded, hidden_states: bool = False) -> tuple[torch.Tensor, Any]:
    """Logits (and hidden states) aligned with ``enc.input_ids``.

    Prompt tuning prepends ``num_virtual_tokens`` positions to the outputs; they are cut off
    here, so position ``t`` always means input token ``t`` whichever method is active.
    """
    out = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, output_hidden_states=hidden_states)
    length = enc.input_ids.shape[1]
    logits = out.logits[:, -length:]
    hidden = tuple(h[:, -length:] for h in out.hidden_states) if hidden_states else None
    return logits, hidden


def save_model(model: torch.nn.Module, path: str | Path, tokenizer: Any = None, base_model: str | None = None) -> Path:
    """``save_pretrained`` into a temporary sibling folder that then replaces ``path``
    (:func:`shared_utils.atomic.atomic_folder`): a crash while saving leaves the old folder.

    ``base_model`` (the name the run was configured with: embedded alias, hub id or folder)
    is recorded as the adapter's ``base_model_name_or_path`` instead of the folder the base
    model was loaded from, which for an alias is a machine-local cache path; the adapter then
    loads on any machine where that name resolves (:func:`load_saved`).
    """
    with atomic_folder(path) as staging:
        model.save_pretrained(staging)
        config_file = Path(staging) / "adapter_config.json"
        if base_model is not None and config_file.is_file():
            # rewritten after saving: peft looks a hub-id base up online while it saves
            adapter_config = json.loads(config_file.read_text())
            adapter_config["base_model_name_or_path"] = base_model
            config_file.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    return Path(path)


def load_adapter(base_model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Attach a saved adapter to ``base_model`` (``PeftModel.from_pretrained``)."""
    from peft import PeftModel

    if not (Path(path) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{path} holds no adapter_config.json (not a saved peft adapter)")
    return PeftModel.from_pretrained(base_model, str(path))


def recorded_base_model(path: str | Path) -> str:
    """The base model name a saved adapter records (``base_model_name_or_path``)."""
    config_file = Path(path) / "adapter_config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} holds no adapter_config.json (not a saved peft adapter)")
    name = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if not name:
        raise ConfigError(f"{config_file} records no base_model_name_or_path; pass the base model explicitly")
    return name


def load_saved(path: str | Path) -> tuple[torch.nn.Module, Any]:
    """``(model, tokenizer)``: the recorded base model, resolved here by name, with the adapter attached."""
    from semantic_peft.experiment import load_model

    model, tokenizer = load_model(recorded_base_model(path))
    return load_adapter(model, path), tokenizer


def merge(model: torch.nn.Module) -> torch.nn.Module:
    """``merge_and_unload``: a plain transformers model with the adapter folded into its weights."""
    if not is_peft(model):
        return model
    if model.peft_config[model.active_adapter].is_prompt_learning:
        raise ValueError("prompt/prefix tuning adds virtual tokens and cannot be merged into the weights")
    return model.merge_and_unload()
