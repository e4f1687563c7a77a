"""Configuration dataclasses (defaults < YAML < command-line overrides, see shared_utils.config).

The defaults are the values of the shipped ``configs/default.yaml`` (a test keeps them
equal). Choice fields are ``Literal``-typed: a value outside the choices is refused when
the config is loaded or built, before any data or model is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from shared_utils.config import check_choices


class _Checked:
    """Checks the ``Literal`` choice fields of configs built in Python."""

    def __post_init__(self) -> None:
        check_choices(self)


@dataclass
class ModelConfig(_Checked):
    """The DiffuSeq denoiser: a randomly initialised BERT encoder between up/down projections."""

    embedding_dim: int = field(default=32, metadata={"help": "word embedding width (paper: 128)"})
    hidden_size: int = field(default=128, metadata={"help": "transformer width (paper: 768)"})
    num_layers: int = field(default=3, metadata={"help": "transformer layers (paper: 12)"})
    num_heads: int = field(default=4, metadata={"help": "attention heads (paper: 12)"})
    intermediate_size: int = field(default=512, metadata={"help": "FFN width (paper: 3072)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the encoder"})
    self_conditioning: bool = field(default=True, metadata={"help": "feed the previous x0 estimate back in"})
    init_from: str = field(
        default="",
        metadata={
            "help": "BERT encoder (alias/folder/hub id, e.g. minilm-l6) whose first num_layers layers, position "
            "embeddings and word embeddings initialise the denoiser; its widths must match (empty: random init)"
        },
    )
    target_positions: Literal["continue", "restart"] = field(
        default="continue",
        metadata={
            "help": "continue (DiffuSeq: position ids run on over [CLS] src [SEP] trg) | restart (target "
            "positions count again from 1, so target word k shares the position id of source word k, and a "
            "learned segment embedding, 0 at the source and 1 at the target, tells the halves apart)"
        },
    )
    init_projections: Literal["random", "identity"] = field(
        default="random",
        metadata={
            "help": "with init_from: random (DiffuSeq's random up/down projections and time embedding) | "
            "identity (the up projection undoes the unit-std rescaling of the word embeddings, the down "
            "projection maps the encoder's output back to that scale, the time embedding starts at zero, "
            "so the pretrained encoder sees the pretrained embeddings; needs embedding_dim == hidden_size)"
        },
    )
    input_scaling: Literal["none", "sqrt_abar"] = field(
        default="none",
        metadata={
            "help": "none (DiffuSeq: the denoiser reads x_t) | sqrt_abar (it reads sqrt(abar_t) x_t at target "
            "positions, the linear least-squares estimate of unit-variance x0, so the noise it is handed "
            "shrinks to 0 at t = T instead of filling the target slots; abar of the base schedule, linear "
            "for info)"
        },
    )
    freeze_embeddings: bool = field(
        default=False,
        metadata={"help": "keep the word embeddings (the x0 targets and the rounding head) fixed at their init"},
    )


@dataclass
class DiffusionConfig(_Checked):
    """Noise schedule and forward process."""

    steps: int = field(default=500, metadata={"help": "number of diffusion steps T (paper: 2000)"})
    schedule: Literal["sqrt", "linear", "info"] = field(
        default="info", metadata={"help": "sqrt (DiffuSeq), linear (abar=1-t/T) or info"}
    )
    info_lambda: float = field(default=0.5, metadata={"help": "lambda of the information schedule"})
    info_score: Literal["self_information", "tfidf"] = field(
        default="self_information", metadata={"help": "word information score: self_information (-log p(w)) or tfidf"}
    )
    sample_schedule: Literal["predicted", "none"] = field(
        default="predicted",
        metadata={
            "help": "predicted: per-token schedule from argmax words of x0-hat "
            "while sampling | none: base schedule (lambda=0) at sampling"
        },
    )
    eps: float = field(default=1e-4, metadata={"help": "abar is clipped to [eps, 1-eps]"})


@dataclass
class DataConfig(_Checked):
    dataset: str = field(
        default="builtin",
        metadata={
            "help": "builtin, a .jsonl file, a folder with train/valid/test .jsonl (a path), or a hub id (owner/name)"
        },
    )
    train_split: str = field(
        default="train", metadata={"help": "split used for training; splits joined by + and sliced: valid+test[:2000]"}
    )
    eval_split: str = field(default="test", metadata={"help": "split used for evaluation (e.g. test[2000:])"})
    tokenizer: str = field(default="minilm-l6", metadata={"help": "tokenizer (embedded alias, folder or hub id)"})
    seq_len: int = field(default=40, metadata={"help": "length of src [SEP] trg (paper: 128)"})
    restrict_vocab: bool = field(
        default=True, metadata={"help": "output vocabulary = tokens seen in the training data"}
    )
    max_train: int = field(default=0, metadata={"help": "use at most this many training pairs (0: all)"})
    max_eval: int = field(default=100, metadata={"help": "evaluate on at most this many pairs (0: all)"})


@dataclass
class TrainConfig(_Checked):
    steps: int = field(default=500, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=64, metadata={"help": "global batch size per optimizer step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate (paper: 1e-4)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    pretrained_lr_scale: float = field(
        default=1.0,
        metadata={
            "help": "with model.init_from: lr factor for the parameters copied from the pretrained encoder "
            "(its layers, position, segment and word embeddings, embedding LayerNorm); the new ones "
            "(projections, time embedding) keep train.lr"
        },
    )
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up, then linear decay to 0"})
    ema_decay: float = field(default=0.995, metadata={"help": "EMA decay (paper: 0.9999)"})
    timestep_sampler: Literal["uniform", "lossaware"] = field(
        default="lossaware", metadata={"help": "how training steps t are drawn"}
    )
    importance_weights: bool = field(
        default=True,
        metadata={
            "help": "weight each loss by 1 / (T p_t) (unbiased: the objective stays uniform over t); false with "
            "lossaware: not reweighted, so the objective leans toward the high-loss (high-noise) steps it draws more"
        },
    )
    self_cond_prob: float = field(default=0.5, metadata={"help": "probability of the self-conditioning pass"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm (0: off)"})
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "auto: bf16 where the GPU has it, else fp32"}
    )
    tracker: Literal["wandb", "none"] = field(default="wandb", metadata={"help": "experiment tracker"})
    checkpoint_every: int = field(
        default=100,
        metadata={
            "help": "save a checkpoint every N steps (0: at the end only); `sample`/`eval` of a run "
            "stopped early use its latest checkpoint"
        },
    )
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept (the newest N; older ones are deleted)"})
    resume: str = field(default="", metadata={"help": "checkpoint folder (checkpoints/step_N) to resume from"})
    resume_force: bool = field(
        default=False,
        metadata={"help": "resume even when the checkpoint's run was made with another config"},
    )
    log_every: int = field(default=50, metadata={"help": "log the loss every N steps"})


@dataclass
class SampleConfig(_Checked):
    method: Literal["ddim", "ddpm"] = field(default="ddim", metadata={"help": "ddim (respaced) or ddpm (all T steps)"})
    steps: int = field(default=50, metadata={"help": "reverse steps for ddim"})
    clamp: bool = field(
        default=False,
        metadata={
            "help": "round x0-hat to the nearest embedding at each step "
            "(DiffuSeq's clamping; lowered BLEU here, see README)"
        },
    )
    batch_size: int = field(default=256, metadata={"help": "sequences per forward pass"})
    candidates: int = field(default=10, metadata={"help": "samples per source (MBR over them)"})
    use_ema: bool = field(default=True, metadata={"help": "sample with the EMA weights"})


@dataclass
class EvalConfig(_Checked):
    mbr_quality: int = field(default=10, metadata={"help": "candidates for MBR in quality metrics"})
    mbr_diversity: int = field(default=3, metadata={"help": "candidates for the diversity metrics"})
    bertscore_model: str = field(default="minilm-l6", metadata={"help": "encoder for BERTScore"})
    bertscore_layer: int = field(default=6, metadata={"help": "hidden layer used by BERTScore (1-based)"})


@dataclass
class InfoDiffusionConfig(_Checked):
    seed: int = field(default=0, metadata={"help": "random seed"})
    output_dir: str = field(default="runs/infodiffusion", metadata={"help": "where checkpoints/samples go"})
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
