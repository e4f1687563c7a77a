"""Configuration dataclasses (defaults < YAML < ``--key value`` overrides, via shared_utils.config).

The defaults equal the shipped ``configs/default.yaml`` (a test checks it). Choice fields are
``Literal`` types, checked when a config is loaded or built, before any model or data is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from shared_utils.config import check_choices
from shared_utils.device import AcceleratorConfig
from shared_utils.errors import ConfigError

PeftMethod = Literal["lora", "ia3", "prompt_tuning", "prefix_tuning", "full"]
WeightScheme = Literal["linear", "softmax", "focal"]
DataFormat = Literal["auto", "zsre", "counterfact", "jsonl"]
PEFT_METHODS = get_args(PeftMethod)
WEIGHT_SCHEMES = get_args(WeightScheme)
# LoRA on every linear layer of the attention and MLP blocks (LLaMA / SmolLM2 names).
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class DataConfig:
    source: str = field(
        default="builtin",
        metadata={"help": "'builtin' (invented-entity facts), a local .json/.jsonl file, or a hub dataset id"},
    )
    format: DataFormat = field(
        default="auto", metadata={"help": "zsre (MEND), counterfact (EasyEdit), jsonl (generic) or auto-detected"}
    )
    split: str = field(default="train", metadata={"help": "split for hub datasets"})
    max_facts: int | None = field(default=None, metadata={"help": "keep only the first N facts"})
    builtin_per_relation: int = field(default=25, metadata={"help": "built-in facts per relation (8 relations)"})
    builtin_seed: int = field(default=0, metadata={"help": "seed of the built-in fact generator"})
    skip_invalid: bool = field(
        default=False, metadata={"help": "skip malformed records (a warning names each) instead of stopping"}
    )
    max_paraphrases: int = field(default=1, metadata={"help": "paraphrases per fact used for evaluation"})
    append_eos: bool = field(default=False, metadata={"help": "train the EOS token after each target"})

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class PeftSettings:
    method: PeftMethod = field(default="lora", metadata={"help": "PEFT method (full = full fine-tuning)"})
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    target_modules: list[str] | None = field(
        default_factory=lambda: list(ALL_LINEAR),
        metadata={"help": "module-name suffixes (list) for LoRA/IA3; none = peft's default for the architecture"},
    )
    feedforward_modules: list[str] | None = field(
        default=None, metadata={"help": "IA3 feed-forward modules (subset of target_modules); none = peft's default"}
    )
    layers_to_transform: list[int] | None = field(
        default=None, metadata={"help": "LoRA/IA3 only on these layer indices; none = all layers"}
    )
    num_virtual_tokens: int = field(default=10, metadata={"help": "virtual tokens for prompt/prefix tuning"})

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class FilterConfig:
    """Data filtering (see :mod:`semantic_peft.filtering`)."""

    enabled: bool = field(default=False, metadata={"help": "filter the training facts by base semantic distance"})
    max_distance: float | None = field(default=None, metadata={"help": "drop facts whose base distance exceeds this"})
    quantile: float | None = field(
        default=0.8,
        metadata={"help": "drop facts above this quantile of the base distances (0.8 keeps the closest 80%)"},
    )
    keep_fraction: float = field(
        default=0.9,
        metadata={
            "help": "then keep this fraction of the survivors, chosen greedily for low mean distance and "
            "high target-embedding variance (1.0 = no subset step)"
        },
    )
    variance_weight: float = field(
        default=1.0, metadata={"help": "lambda in the subset objective  -mean(d) + lambda * var(target embeddings)"}
    )

    def __post_init__(self) -> None:
        if self.quantile is not None and not 0.0 < self.quantile <= 1.0:
            raise ConfigError(f"filter.quantile must be in (0, 1], got {self.quantile}")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ConfigError(f"filter.keep_fraction must be in (0, 1], got {self.keep_fraction}")


@dataclass
class ReweightConfig:
    """Semantic-distance re-weighted loss (see :mod:`semantic_peft.reweighting`)."""

    enabled: bool = field(default=False, metadata={"help": "weight each fact's loss by its detached distance"})
    scheme: WeightScheme = field(default="softmax", metadata={"help": "loss weight from the distance"})
    temperature: float = field(
        default=2.0, metadata={"help": "softmax temperature (in batch std units if standardize)"}
    )
    standardize: bool = field(
        default=True, metadata={"help": "softmax on batch-standardised distances (scale-free temperature)"}
    )
    gamma: float = field(default=2.0, metadata={"help": "focal exponent"})
    mix: float = field(default=1.0, metadata={"help": "w = (1 - mix) + mix * w_scheme"})
    aux_weight: float = field(default=0.0, metadata={"help": "beta of the auxiliary (differentiable) distance term"})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.temperature <= 0:
            raise ConfigError(f"reweight.temperature must be > 0, got {self.temperature}")


@dataclass
class TrainConfig:
    epochs: int = field(default=4, metadata={"help": "passes over the training facts"})
    batch_size: int = field(default=16, metadata={"help": "facts per optimiser step (per process)"})
    lr: float = field(default=4e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    track_distance: bool = field(
        default=True, metadata={"help": "record every fact's distance in each epoch (from the training forward pass)"}
    )


@dataclass
class EvalConfig:
    batch_size: int = field(default=32, metadata={"help": "facts per evaluation forward pass"})
    locality_tokens: int = field(
        default=3, metadata={"help": "greedy tokens of the base model compared on the locality probes"}
    )
    drift_probes: bool = field(
        default=True,
        metadata={
            "help": "after every epoch, measure the distance on paraphrases and on the unrelated and "
            "neighbourhood answers (drift where the loss does not pull)"
        },
    )


@dataclass
class AnalysisConfig:
    feature_layer: int = field(
        default=-1, metadata={"help": "hidden_states index for knowledge features (-1 = last layer)"}
    )
    distance_buckets: int = field(default=4, metadata={"help": "quantile buckets of initial distance"})
    alone_facts: int = field(
        default=0,
        metadata={"help": "facts also learned alone (fresh adapter each) to compare with joint learning; 0 = skip"},
    )
    figures: bool = field(default=True, metadata={"help": "write PNG figures"})


@dataclass
class AcceleratorSettings(AcceleratorConfig):
    """shared_utils' accelerator options, tracked in this package's own wandb project."""

    project_name: str = field(default="semantic-peft", metadata={"help": "tracker project"})


@dataclass
class ExperimentConfig:
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "embedded alias, local folder or hub id"})
    name: str = field(default="lora", metadata={"help": "run name (results file stem)"})
    seed: int = field(default=0, metadata={"help": "seed for everything"})
    output_dir: str = field(default="runs/semantic-peft", metadata={"help": "adapters, logs and per-run files"})
    num_threads: int = field(
        default=1,
        metadata={"help": "torch CPU threads (0 = torch's default); 1 avoids thread thrashing on a shared machine"},
    )
    save_model: bool = field(default=True, metadata={"help": "save the adapter (or full model) after training"})
    data: DataConfig = field(default_factory=DataConfig)
    peft: PeftSettings = field(default_factory=PeftSettings)
    filter: FilterConfig = field(default_factory=FilterConfig)
    reweight: ReweightConfig = field(default_factory=ReweightConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    accelerator: AcceleratorSettings = field(default_factory=AcceleratorSettings)

    def __post_init__(self) -> None:
        if self.analysis.alone_facts > 0 and self.peft.method == "full":
            raise ConfigError("analysis.alone_facts needs a peft method (the base model must stay unchanged), not full")
