"""Configuration dataclasses (defaults < YAML < command-line overrides, see shared_utils.config)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    """The DiffuSeq denoiser: a randomly initialised BERT encoder between up/down projections."""

    embedding_dim: int = field(default=32, metadata={"help": "word embedding width (paper: 128)"})
    hidden_size: int = field(default=128, metadata={"help": "transformer width (paper: 768)"})
    num_layers: int = field(default=3, metadata={"help": "transformer layers (paper: 12)"})
    num_heads: int = field(default=4, metadata={"help": "attention heads (paper: 12)"})
    intermediate_size: int = field(default=512, metadata={"help": "FFN width (paper: 3072)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout in the encoder"})
    self_conditioning: bool = field(default=True, metadata={"help": "feed the previous x0 estimate back in"})


@dataclass
class DiffusionConfig:
    """Noise schedule and forward process."""

    steps: int = field(default=500, metadata={"help": "number of diffusion steps T (paper: 2000)"})
    schedule: str = field(default="info", metadata={"help": "sqrt (DiffuSeq) | linear (abar=1-t/T) | info"})
    info_lambda: float = field(default=0.5, metadata={"help": "lambda of the information schedule"})
    info_score: str = field(
        default="self_information", metadata={"help": "self_information (-log p(w)) | tfidf: word information score"}
    )
    sample_schedule: str = field(
        default="predicted",
        metadata={
            "help": "predicted: per-token schedule from argmax words of x0-hat "
            "while sampling | none: base schedule (lambda=0) at sampling"
        },
    )
    eps: float = field(default=1e-4, metadata={"help": "abar is clipped to [eps, 1-eps]"})


@dataclass
class DataConfig:
    dataset: str = field(
        default="builtin", metadata={"help": "builtin | a folder with train/valid/test .jsonl | a hub id"}
    )
    train_split: str = field(default="train", metadata={"help": "split used for training"})
    eval_split: str = field(default="test", metadata={"help": "split used for evaluation"})
    tokenizer: str = field(default="minilm-l6", metadata={"help": "tokenizer (embedded alias, folder or hub id)"})
    seq_len: int = field(default=40, metadata={"help": "length of src [SEP] trg (paper: 128)"})
    restrict_vocab: bool = field(
        default=True, metadata={"help": "output vocabulary = tokens seen in the training data"}
    )
    max_train: int = field(default=0, metadata={"help": "use at most this many training pairs (0: all)"})
    max_eval: int = field(default=100, metadata={"help": "evaluate on at most this many pairs (0: all)"})


@dataclass
class TrainConfig:
    steps: int = field(default=500, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=64, metadata={"help": "global batch size per optimizer step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate (paper: 1e-4)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up, then linear decay to 0"})
    ema_decay: float = field(default=0.995, metadata={"help": "EMA decay (paper: 0.9999)"})
    timestep_sampler: str = field(default="lossaware", metadata={"help": "uniform | lossaware"})
    self_cond_prob: float = field(default=0.5, metadata={"help": "probability of the self-conditioning pass"})
    grad_clip: float = field(default=1.0, metadata={"help": "max gradient norm (0: off)"})
    mixed_precision: str = field(default="auto", metadata={"help": "auto | no | bf16 | fp16"})
    tracker: str = field(default="wandb", metadata={"help": "wandb | none"})
    checkpoint_every: int = field(default=0, metadata={"help": "save a checkpoint every N steps (0: end only)"})
    resume: str = field(default="", metadata={"help": "checkpoint folder to resume from"})
    log_every: int = field(default=50, metadata={"help": "log the loss every N steps"})


@dataclass
class SampleConfig:
    method: str = field(default="ddim", metadata={"help": "ddim (respaced) | ddpm (all T steps)"})
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
class EvalConfig:
    mbr_quality: int = field(default=10, metadata={"help": "candidates for MBR in quality metrics"})
    mbr_diversity: int = field(default=3, metadata={"help": "candidates for the diversity metrics"})
    bertscore_model: str = field(default="minilm-l6", metadata={"help": "encoder for BERTScore"})
    bertscore_layer: int = field(default=6, metadata={"help": "hidden layer used by BERTScore (1-based)"})


@dataclass
class InfoDiffusionConfig:
    seed: int = field(default=0, metadata={"help": "random seed"})
    output_dir: str = field(default="runs/infodiffusion", metadata={"help": "where checkpoints/samples go"})
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
