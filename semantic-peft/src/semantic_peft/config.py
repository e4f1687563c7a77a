"""Configuration dataclasses (defaults < YAML < ``--key value`` overrides, via shared_utils.config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared_utils.device import AcceleratorConfig

PEFT_METHODS = ("lora", "ia3", "prompt_tuning", "prefix_tuning", "full")
WEIGHT_SCHEMES = ("linear", "softmax", "focal")


@dataclass
class DataConfig:
    source: str = field(
        default="builtin",
        metadata={"help": "'builtin' (invented-entity facts), a local .json/.jsonl file, or a hub dataset id"},
    )
    format: str = field(default="auto", metadata={"help": "auto, zsre (MEND), counterfact (EasyEdit) or jsonl"})
    split: str = field(default="train", metadata={"help": "split for hub datasets"})
    max_facts: int | None = field(default=None, metadata={"help": "keep only the first N facts"})
    builtin_per_relation: int = field(default=25, metadata={"help": "built-in facts per relation (8 relations)"})
    builtin_seed: int = field(default=0, metadata={"help": "seed of the built-in fact generator"})
    skip_invalid: bool = field(
        default=False, metadata={"help": "drop malformed records (logged) instead of stopping at the first one"}
    )
    max_paraphrases: int = field(default=1, metadata={"help": "paraphrases per fact used for evaluation"})
    append_eos: bool = field(default=False, metadata={"help": "train the EOS token after each target"})


@dataclass
class PeftSettings:
    method: str = field(default="lora", metadata={"help": f"one of {PEFT_METHODS}"})
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "module-name suffixes (list) for LoRA/IA3; none = peft's default for the architecture"},
    )
    feedforward_modules: list[str] | None = field(
        default=None, metadata={"help": "IA3 feed-forward modules (subset of target_modules); none = peft's default"}
    )
    layers_to_transform: list[int] | None = field(
        default=None, metadata={"help": "LoRA/IA3 only on these layer indices; none = all layers"}
    )
    num_virtual_tokens: int = field(default=10, metadata={"help": "virtual tokens for prompt/prefix tuning"})


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


@dataclass
class ReweightConfig:
    """Semantic-distance re-weighted loss (see :mod:`semantic_peft.reweighting`)."""

    enabled: bool = field(default=False, metadata={"help": "weight each fact's loss by its detached distance"})
    scheme: str = field(default="softmax", metadata={"help": f"one of {WEIGHT_SCHEMES}"})
    temperature: float = field(default=0.05, metadata={"help": "softmax temperature"})
    gamma: float = field(default=2.0, metadata={"help": "focal exponent"})
    mix: float = field(default=1.0, metadata={"help": "w = (1 - mix) + mix * w_scheme"})
    aux_weight: float = field(default=0.0, metadata={"help": "beta of the auxiliary (differentiable) distance term"})


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
    locality_tokens: int = field(default=3, metadata={"help": "greedy tokens compared on unrelated prompts"})


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
class ExperimentConfig:
    model: str = field(default="smollm2-135m-instruct", metadata={"help": "embedded alias, local folder or hub id"})
    name: str = field(default="lora", metadata={"help": "run name (results file stem)"})
    seed: int = field(default=0, metadata={"help": "seed for everything"})
    output_dir: str = field(default="runs/semantic-peft", metadata={"help": "adapters, logs and per-run files"})
    num_threads: int = field(
        default=0,
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
    accelerator: AcceleratorConfig = field(
        default_factory=lambda: AcceleratorConfig(tracker="wandb", project_name="semantic-peft")
    )
