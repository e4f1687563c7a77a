"""Configuration dataclasses (defaults < YAML < ``--key value`` overrides, via ``shared_utils.config``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared_utils.config import check_choices
from shared_utils.device import AcceleratorConfig
from shared_utils.errors import ConfigError

PACKAGE = "distill_hetero"  # import name: where `--config <name>` finds the shipped configs
OutputLoss = Literal["ce", "fkl", "rkl", "skl", "srkl", "uld"]
# Keys that may change when a run is resumed: they do not change what the finished steps computed.
RESUME_IGNORED = (
    "train.steps",
    "train.keep_last",
    "train.resume_force",
    "train.log_every",
    "num_threads",
    "output_dir",
)


@dataclass
class StudentConfig:
    """The student: built from a config of another family than the teacher (or loaded from a folder)."""

    family: str = field(
        default="gpt2",
        metadata={"help": "gpt2, qwen2, llama, or a model folder/hub id to load (not used by init=teacher_prune)"},
    )
    num_layers: int = field(default=20, metadata={"help": "student depth Ls"})
    hidden_size: int = field(default=256, metadata={"help": "student width"})
    num_heads: int = field(default=4, metadata={"help": "attention heads"})
    intermediate_size: int = field(
        default=0,
        metadata={"help": "MLP width (teacher_prune: channels kept, 0 = all; qwen2/llama; gpt2 uses 4x width)"},
    )
    keep_blocks: list[int] = field(
        default_factory=list,
        metadata={
            "help": "teacher_prune: the teacher blocks to keep (0-based, num_layers of them); empty = evenly spaced"
        },
    )
    tokenizer: str = field(
        default="",
        metadata={
            "help": "empty: the teacher's tokenizer; else the student's own (alias such as minilm-l6, folder or hub "
            "id): cross-tokenizer distillation (loss.output ce/uld, span-aligned intermediate layers)"
        },
    )
    max_positions: int = field(default=512, metadata={"help": "context length of the student"})
    dropout: float = field(default=0.0, metadata={"help": "dropout of the student"})
    init: Literal["random", "teacher_pca", "teacher_prune"] = field(
        default="teacher_prune",
        metadata={
            "help": "teacher_prune (the teacher with num_layers of its blocks, keep_blocks or evenly spaced, and "
            "intermediate_size MLP channels of largest weight norm, 0 = all; family, hidden_size and num_heads are "
            "then the teacher's), random (from scratch), or teacher_pca (from scratch but token embeddings = "
            "teacher embeddings projected on their top principal directions)"
        },
    )

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class MappingConfig:
    """Which student layer is aligned with which teacher layer (layer 0 = embedding output)."""

    rule: Literal["uniform", "last-k", "skip", "explicit"] = field(
        default="uniform", metadata={"help": "layer mapping rule"}
    )
    k: int = field(default=2, metadata={"help": "last-k: number of last layers; skip: stride over student layers"})
    include_embedding: bool = field(default=True, metadata={"help": "uniform: also align the embedding outputs"})
    pairs: list[list[int]] = field(
        default_factory=list, metadata={"help": "explicit: [[student_layer, teacher_layer], ...]"}
    )

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class LossConfig:
    """Output and intermediate losses and how their ratios are set."""

    output: list[OutputLoss] = field(
        default_factory=lambda: ["fkl"],
        metadata={"help": "output-layer losses from the registry: ce, fkl, rkl, skl, srkl, uld (cross-tokenizer)"},
    )
    intermediate: Literal["mse", "mse_ln", "cosine"] | None = field(
        default="mse_ln", metadata={"help": "intermediate-layer loss (None: none)"}
    )
    temperature: float = field(default=1.0, metadata={"help": "KD temperature (losses scaled by T^2)"})
    skew_alpha: float = field(default=0.1, metadata={"help": "skew KL mixing weight alpha (DistiLLM)"})
    weights: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "help": "fixed ratio per loss name (default 1.0); also the initial ratio of learned weights (dwa: empty)"
        },
    )
    weighting: Literal["fixed", "uncertainty", "dwa"] = field(
        default="uncertainty",
        metadata={
            "help": "fixed ratios, uncertainty (one learned log-variance per loss), or dwa (Dynamic Weight Average: "
            "ratios from each loss's recent rate of change)"
        },
    )
    dwa_temperature: float = field(default=2.0, metadata={"help": "dwa: softmax temperature T (the paper's 2)"})
    dwa_window: int = field(
        default=10,
        metadata={"help": "dwa: optimizer steps per period (the paper's epoch); ratios change after each period"},
    )
    intermediate_tokens: Literal["all", "response"] = field(
        default="all", metadata={"help": "all real tokens, or the response only"}
    )
    projector: Literal["linear", "mlp"] = field(default="linear", metadata={"help": "student width -> teacher width"})

    def __post_init__(self) -> None:
        check_choices(self)
        if self.dwa_temperature <= 0:
            raise ConfigError(f"option loss.dwa_temperature must be > 0, got {self.dwa_temperature}")
        if self.dwa_window < 1:
            raise ConfigError(f"option loss.dwa_window must be >= 1 step, got {self.dwa_window}")
        if self.weighting == "dwa" and self.weights:
            raise ConfigError(
                f"loss.weighting=dwa sets every ratio itself; loss.weights must be empty, got {self.weights}"
            )


@dataclass
class DataConfig:
    """Training data: the built-in set (teacher answers as targets) or a MiniLLM-format file/hub id."""

    train: str = field(
        default="builtin", metadata={"help": "builtin, a shared-set name (dolly_dev), a .jsonl path or hub id"}
    )
    builtin_train_size: int = field(default=232, metadata={"help": "built-in instructions used for training"})
    builtin_eval_size: int = field(default=40, metadata={"help": "held-out built-in instructions for evaluation"})
    builtin_split_seed: int = field(
        default=0,
        metadata={
            "help": "shuffle of the built-in set before the split (kept apart from `seed`, so runs with other seeds "
            "share the split and the cached teacher answers)"
        },
    )
    targets: Literal["auto", "references", "teacher"] = field(
        default="auto",
        metadata={"help": "auto: references when present, else the teacher's greedy answers"},
    )
    max_prompt_tokens: int = field(
        default=192, metadata={"help": "prompts fitted to this by cutting the input (context), keeping the instruction"}
    )
    max_response_tokens: int = field(default=48, metadata={"help": "response truncated to this (EOS kept)"})
    cache_dir: str = field(
        default="runs/distill-hetero/cache",
        metadata={"help": "teacher answers cache (the copy shipped in the package is read first)"},
    )

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class TrainConfig:
    """Optimisation, checkpointing, teacher-output caching."""

    steps: int = field(default=60, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "per-device micro-batch size"})
    lr: float = field(default=3e-4, metadata={"help": "peak learning rate (student and projectors)"})
    weight_lr: float = field(default=1e-2, metadata={"help": "learning rate of the learned log-variances"})
    warmup_steps: int = field(default=10, metadata={"help": "linear warm-up, then cosine decay"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    checkpoint_every: int = field(default=0, metadata={"help": "save a checkpoint every N steps (0: never)"})
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept (the newest); older ones are deleted"})
    resume: bool = field(default=True, metadata={"help": "resume from the latest checkpoint in output_dir"})
    resume_force: bool = field(
        default=False,
        metadata={
            "help": "resume even when the run's saved config differs from this one (by default that is refused; "
            f"{', '.join(RESUME_IGNORED)} may always change)"
        },
    )
    teacher_cache_top_k: int = field(
        default=64,
        metadata={
            "help": "0: run the teacher every step; k>0: precompute once per example its top-k log-probs (plus the "
            "rest mass) and the mapped hidden states, reused across epochs and runs"
        },
    )
    teacher_dtype: Literal["fp32", "bf16", "fp16"] = field(default="fp32", metadata={"help": "frozen teacher dtype"})
    log_every: int = field(default=1, metadata={"help": "log losses and weights every N steps"})

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class EvalConfig:
    """Generation and ROUGE-L."""

    datasets: list[str] = field(
        default_factory=lambda: [
            "builtin",
            "dolly_test",
            "selfinst_test",
            "vicuna_test",
            "sinst_test_500",
            "uinst_test_500",
        ],
        metadata={
            "help": "builtin and/or shared-set names (dolly_test, selfinst_test, vicuna_test, sinst_test_500, "
            "uinst_test_500), .jsonl paths or hub ids"
        },
    )
    max_examples: int = field(default=12, metadata={"help": "first N examples of each set (0: all)"})
    batch_size: int = field(default=16, metadata={"help": "generation batch size (left padding)"})
    max_new_tokens: int = field(default=48, metadata={"help": "generated tokens"})
    greedy: bool = field(default=True, metadata={"help": "include greedy decoding"})
    sample_seeds: list[int] = field(default_factory=lambda: [1, 2], metadata={"help": "seeds for sampled decoding"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling"})
    skip_missing: bool = field(
        default=False,
        metadata={"help": "skip (with a warning) shared evaluation sets that are not on disk instead of failing"},
    )


@dataclass
class RunConfig:
    """One distillation run."""

    name: str = field(default="kd_inter_learned", metadata={"help": "run name (results file, wandb)"})
    teacher: str = field(default="smollm2-135m-instruct", metadata={"help": "embedded alias, folder or hub id"})
    student: StudentConfig = field(default_factory=StudentConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    accelerator: AcceleratorConfig = field(default_factory=AcceleratorConfig)
    seed: int = field(default=0, metadata={"help": "seed of everything"})
    num_threads: int = field(
        default=1,
        metadata={
            "help": "torch CPU threads (0: torch's default). 1 is several times faster on a CPU shared by other jobs"
        },
    )
    output_dir: str = field(default="runs/distill-hetero", metadata={"help": "checkpoints and the exported student"})
