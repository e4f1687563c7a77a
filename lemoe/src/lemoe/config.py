"""Configuration dataclasses for LEMoE and its experiment harness.

Every field carries ``help`` metadata (shown by ``lemoe edit --help``). The defaults are
exactly the shipped ``configs/default.yaml`` (the embedded CPU setting the committed results
used: SmolLM2-135M, built-in counterfactual edits; a test keeps the two equal);
``configs/paper/`` holds one YAML per setting of the paper. Choice fields are ``Literal`` and
checked when a config is built, before any model or data is touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from shared_utils.config import check_choices
from shared_utils.device import AcceleratorConfig
from shared_utils.errors import ConfigError

Method = Literal[
    "lemoe", "lemoe_subject", "lemoe_random", "token_moe", "ft_l", "lora", "grace", "wise", "alphaedit", "unedited"
]
METHODS: tuple[str, ...] = get_args(Method)
NullGate = Literal["activation", "none", "calibrated", "subject"]  # the no-expert paths of router.null_threshold
DataFormat = Literal["auto", "zsre", "counterfact", "jsonl", "builtin"]


def _h(text: str) -> dict:
    return {"help": text}


@dataclass
class AdaptorConfig:
    """Module insertion (paper Sec. "Module insertion"): h(x) = FFN(x) + λ·Σᵢ g(i|x)·Eᵢ(x)."""

    layer: int = field(default=25, metadata=_h("decoder layer whose FFN gets the adaptor (0-based)"))
    module_path: str | None = field(
        default=None,
        metadata=_h(
            "dotted path of the FFN to wrap, '{layer}' is substituted (e.g. 'model.layers.{layer}.mlp'); "
            "None = found from the architecture (LLaMA/Mistral/Qwen2 or GPT-2 layouts)"
        ),
    )
    expert_width: int = field(default=256, metadata=_h("hidden width of each expert FFN"))
    scale: float = field(default=1.0, metadata=_h("λ, the weight of the expert branch"))
    max_experts: int = field(default=5, metadata=_h("cap on the number of experts (the paper used <= 5)"))
    overflow: Literal["reuse_last", "error"] = field(
        default="reuse_last",
        metadata=_h(
            "what a batch past the cap does: 'reuse_last' = the last expert keeps training on the new batch "
            "with up to replay_limit of its own earlier edits replayed, 'error' = raise"
        ),
    )
    replay_limit: int = field(
        default=20,
        metadata=_h(
            "past the cap, at most this many earlier edits of the reused expert are replayed per batch (a "
            "seeded random sample), so the cost per batch stays bounded at any T; -1 = replay all of them"
        ),
    )

    def __post_init__(self):
        check_choices(self)


@dataclass
class RouterConfig:
    """KV anchor routing (instance level) or the conventional token-level routing baseline."""

    mode: Literal["kv_anchor", "token"] = field(
        default="kv_anchor", metadata=_h("'kv_anchor' (one value per instance) or 'token'")
    )
    top_k: int = field(default=1, metadata=_h("experts mixed per instance (gate renormalised over the top-k)"))
    dim: int = field(default=64, metadata=_h("width of the value/key space (W_down output)"))
    route_loss_weight: float = field(
        default=1.0,
        metadata=_h("weight of the routing cross-entropy sending each training instance to its batch's expert"),
    )
    replay: bool = field(
        default=True,
        metadata=_h(
            "keep the pooled prompt embeddings of earlier edits and include them in the routing loss, so "
            "training the shared router projection does not re-route earlier edits"
        ),
    )
    pooling: Literal["prompt", "subject"] = field(
        default="prompt",
        metadata=_h(
            "tokens pooled into the routing value ē: 'prompt' = every prompt token; 'subject' = the span of "
            "the edited subject the prompt names (the paper's entity-level value; found by looking the prompt "
            "up in the subjects of the edits made so far, whole prompt when it names none; needs subjects)"
        ),
    )
    null_threshold: NullGate = field(
        default="activation",
        metadata=_h(
            "the no-expert path: 'activation' = the routed expert fires only when its mean output norm over the "
            "prompt tokens reaches its threshold, set between its edit prompts and the calibration half of "
            "router.null_data (WISE-style); 'none' = top-1 always fires an expert; "
            "'calibrated' = no expert fires when the instance's cosine similarity to every stored edit anchor "
            "is below a threshold set from the edit keys; 'subject' = a heuristic: no expert fires unless the "
            "prompt names the subject string of a stored edit (case-folded token match; needs subjects)"
        ),
    )
    null_data: str = field(
        default="builtin",
        metadata=_h(
            "unrelated text the activation gate trains and calibrates on, one line each: 'builtin' = the "
            "package's data/unrelated_text.txt, or a path; even lines train, odd lines are held out for scoring"
        ),
    )
    activation_weight: float = field(
        default=1.0,
        metadata=_h(
            "weight of the activation loss: the new expert's mean output norm on the unrelated calibration text "
            "over its (detached) mean output norm on its edit prompts"
        ),
    )
    null_quantile: float = field(
        default=0.1,
        metadata=_h(
            "calibrated threshold = this quantile of each edit anchor's similarity to its nearest other edit "
            "anchor (routing.AnchorMemory.calibrate)"
        ),
    )

    def __post_init__(self):
        check_choices(self)


@dataclass
class TrainConfig:
    """Per-batch training: NLL of the target tokens, AdamW, step budget, early stop on the loss."""

    lr: float = field(default=1e-2, metadata=_h("AdamW learning rate"))
    weight_decay: float = field(default=0.0, metadata=_h("AdamW weight decay"))
    max_steps: int = field(default=60, metadata=_h("optimizer steps per edit batch"))
    early_stop_loss: float = field(default=0.05, metadata=_h("stop a batch once the NLL falls below this"))
    continuation_weight: float = field(
        default=0.0,
        metadata=_h(
            "weight of KL(before || now) of the next-token distribution right after the target, against the "
            "model before the batch (anti-hijack; 0 = off)"
        ),
    )
    continuation_tokens: int = field(
        default=1,
        metadata=_h(
            "positions after the target that the anti-hijack KL covers: 1 = the next token only; k > 1 also "
            "the positions after each of the model's own k-1 greedy tokens following the target, generated "
            "before the batch and cut before an end token"
        ),
    )
    cache_prefix: bool = field(
        default=True,
        metadata=_h(
            "compute the frozen layers below the adaptor once per batch and train through the layers above "
            "it only (LLaMA/Mistral/GPT-2 layouts); false = full forward each step"
        ),
    )
    progress: bool = field(default=True, metadata=_h("show tqdm progress bars"))

    def __post_init__(self):
        if self.continuation_tokens < 1:
            raise ConfigError(
                f"option 'train.continuation_tokens' must be at least 1 (the token right after the target), "
                f"got {self.continuation_tokens}"
            )


@dataclass
class LEMoEConfig:
    """Everything the editor needs: adaptor, router and training settings."""

    adaptor: AdaptorConfig = field(default_factory=AdaptorConfig)
    router: RouterConfig = field(default_factory=RouterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = field(default=0, metadata=_h("seed for expert initialisation and training"))


@dataclass
class PlanConfig:
    """Editing order planning (paper Sec. "order planning")."""

    order: Literal["cluster", "random", "given"] = field(
        default="cluster", metadata=_h("'cluster' (K-means batches), 'random' or 'given'")
    )
    embedder: str = field(
        default="minilm-l6",
        metadata=_h(
            "embeddings clustered: an encoder alias/path (default the embedded minilm-l6) or 'model' "
            "(mean input embedding of the edited model)"
        ),
    )
    kmeans_iters: int = field(default=50, metadata=_h("K-means iterations"))

    def __post_init__(self):
        check_choices(self)


@dataclass
class WISEConfig:
    """WISE (Wang et al. 2024; lemoe.baselines.wise): side memory in the adaptor layer's down-projection."""

    lr: float = field(default=3e-2, metadata=_h("learning rate of the side memory's shard (AdamW; dev sweep)"))
    mask_density: float = field(
        default=0.2, metadata=_h("ρ, the fraction of side-memory entries each shard (edit batch) may write")
    )
    merge_every: int = field(
        default=5,
        metadata=_h("shards merged (TIES) into the side memory before it is consolidated (new shards start from it)"),
    )
    merge_density: float = field(default=1.0, metadata=_h("TIES trim: fraction of each shard's entries kept"))
    margin_unrelated: float = field(default=0.5, metadata=_h("α of Eq. 5: Δ_act on unrelated text is pushed below it"))
    margin_edit: float = field(default=2.0, metadata=_h("β of Eq. 5: Δ_act on edit prompts is pushed above it"))
    margin_gap: float = field(default=1.5, metadata=_h("γ of Eq. 5: the gap Δ(edit) − Δ(unrelated) is pushed above it"))
    act_weight: float = field(
        default=0.1, metadata=_h("weight of the routing loss L_a beside the target NLL (dev sweep)")
    )
    act_ratio: float = field(
        default=0.88, metadata=_h("ε = act_ratio × the lowest Δ_act over every edit prompt so far")
    )
    null_data: str = field(
        default="builtin", metadata=_h("unrelated text x_i of Eq. 5 ('builtin' = the package's calibration lines)")
    )
    seed: int = field(default=0, metadata=_h("seed of the shard masks"))


@dataclass
class AlphaEditConfig:
    """AlphaEdit (Fang et al. 2025; lemoe.baselines.alphaedit): null-space constrained closed-form edits of the
    adaptor layer's down-projection, no training loop."""

    keys: Literal["answer", "last_prompt"] = field(
        default="answer",
        metadata=_h(
            "key positions of an edit: every position that predicts an answer token, or the last prompt token "
            "only (one key per edit, as the paper at the subject's last token)"
        ),
    )
    v_lr: float = field(default=0.5, metadata=_h("Adam learning rate of each key's value vector δ"))
    v_steps: int = field(default=25, metadata=_h("gradient steps of the value optimisation per batch"))
    v_weight_decay: float = field(default=1e-3, metadata=_h("weight of ‖δ‖² beside the target NLL"))
    clamp_norm: float = field(default=4.0, metadata=_h("‖δ‖ is clamped to clamp_norm × ‖W k‖ (ROME's clamp)"))
    l2: float = field(default=0.1, metadata=_h("λ of Eq. 15, the ridge term of the closed-form update (dev sweep)"))
    nullspace_threshold: float = field(
        default=1e-2,
        metadata=_h("eigenvalues of the preserved keys' covariance below this × the largest span the null space"),
    )
    null_data: str = field(
        default="builtin", metadata=_h("preserved text K₀ ('builtin' = the package's unrelated calibration lines)")
    )


@dataclass
class BaselineConfig:
    """Settings of the baselines run in the same harness (FT-L, LoRA, GRACE, WISE, AlphaEdit)."""

    ftl_module: str = field(
        default="down_proj",
        metadata=_h(
            "FT-L: the sub-module of the adaptor layer's FFN that is fine-tuned ('down_proj', 'c_proj' or 'all')"
        ),
    )
    ftl_lr: float = field(default=1e-3, metadata=_h("FT-L learning rate"))
    lora_rank: int = field(default=8, metadata=_h("LoRA rank (peft), on the adaptor layer's FFN"))
    lora_alpha: int = field(default=16, metadata=_h("LoRA alpha"))
    lora_lr: float = field(default=1e-2, metadata=_h("LoRA learning rate"))
    grace_eps: float = field(
        default=1.0,
        metadata=_h("GRACE: initial radius ε_init of a codebook entry (Euclidean, in units of the FFN input)"),
    )
    grace_lr: float = field(default=0.1, metadata=_h("GRACE: learning rate of the codebook values"))
    wise: WISEConfig = field(default_factory=WISEConfig)
    alphaedit: AlphaEditConfig = field(default_factory=AlphaEditConfig)


@dataclass
class AcceleratorSettings(AcceleratorConfig):
    """shared_utils' accelerator options (device, precision, tracker), in this package's wandb project.

    The device is the GPU when one is visible (``cpu: true`` forces the CPU); ``mixed_precision: auto``
    is bf16 autocast on a GPU that has it and fp32 elsewhere; the tracker logs each batch's NLL, steps
    and time and each row's final metrics (wandb, offline unless logged in; ``none`` turns it off).
    """

    project_name: str = field(default="lemoe", metadata=_h("tracker project"))
    gradient_accumulation_steps: int = field(
        default=1, metadata=_h("must be 1: each edit batch is one optimiser step over all its edits")
    )

    def __post_init__(self):
        if self.gradient_accumulation_steps != 1:
            raise ConfigError(
                f"accelerator.gradient_accumulation_steps={self.gradient_accumulation_steps}: lemoe takes one "
                "optimiser step per edit batch, so only 1 is meaningful (lower batch_size to train on fewer edits)"
            )


@dataclass
class ExperimentConfig:
    """A lifelong editing experiment: T sequential edits in batches, scored on the final model."""

    model: str = field(default="smollm2-135m-instruct", metadata=_h("causal LM: embedded alias, folder or hub id"))
    data: str = field(default="builtin", metadata=_h("'builtin', a file path or a hub dataset id"))
    data_format: DataFormat = field(
        default="auto", metadata=_h("schema of the data file ('auto' = guessed from the first record)")
    )
    num_edits: int = field(default=100, metadata=_h("T, the number of sequential edits"))
    batch_size: int = field(default=20, metadata=_h("edits per batch (one new expert per batch)"))
    num_runs: int = field(
        default=1, metadata=_h("independent runs on disjoint slices of the data (model reset in between), averaged")
    )
    methods: list[Method] = field(
        default_factory=lambda: [
            "lemoe",
            "lemoe_subject",
            "lemoe_random",
            "token_moe",
            "ft_l",
            "lora",
            "grace",
            "wise",
            "unedited",
        ],
        metadata=_h(
            "methods to run: lemoe, lemoe_subject (subject-span routing value), lemoe_random, token_moe, ft_l, "
            "lora, grace, wise, alphaedit (training-free), unedited (the base model: trivial baseline); lemoe "
            "also reports its trained experts under the other no-expert paths (lemoe_gate_*)"
        ),
    )
    eval_each_batch: bool = field(default=True, metadata=_h("also score after each batch (for the figure)"))
    gate_views: bool = field(
        default=True,
        metadata=_h(
            "also score the lemoe row's experts under the other no-expert paths (rows lemoe_gate_*); each "
            "view costs a full scoring of the final model"
        ),
    )
    stop_after_batches: int = field(
        default=0,
        metadata=_h(
            "edit at most this many batches of each method, then save a checkpoint under "
            "<output_dir>/checkpoints and stop without scoring or writing its row; running the same "
            "command again resumes from it (0 = no limit; lemoe.checkpoint)"
        ),
    )
    generation_metrics: bool = field(
        default=True,
        metadata=_h(
            "on the final model also score greedy answers (exact match, token F1), the repetition rate of "
            "greedy continuations and the perplexity on held-out unrelated text, beside the unedited model's"
        ),
    )
    eval_batch_size: int = field(default=32, metadata=_h("sequences per evaluation forward"))
    output_dir: str = field(
        default="runs/lemoe",
        metadata=_h("where results JSON, table and figure go (relative to the working directory)"),
    )
    save_adaptor: str | None = field(
        default=None, metadata=_h("save the LEMoE adaptor (method 'lemoe', last run) to this folder")
    )
    readme: str | None = field(
        default=None, metadata=_h("a README whose results section is regenerated (none by default)")
    )
    readme_section: str = field(
        default="results",
        metadata=_h("name of the README section replaced, between <!-- NAME:start --> and <!-- NAME:end -->"),
    )
    device_map: Literal["none", "auto"] = field(
        default="none",
        metadata=_h(
            "'none': the whole model on the accelerator's device; 'auto': transformers' device_map over the "
            "visible GPUs (and CPU), for a model larger than one GPU"
        ),
    )
    accelerator: AcceleratorSettings = field(default_factory=AcceleratorSettings)
    lemoe: LEMoEConfig = field(default_factory=LEMoEConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)

    def __post_init__(self):
        check_choices(self)
        if self.stop_after_batches < 0:
            raise ConfigError(
                f"option 'stop_after_batches' must be 0 (no limit) or more, got {self.stop_after_batches}"
            )
        if self.stop_after_batches and self.num_runs != 1:
            raise ConfigError(
                f"option 'stop_after_batches' needs num_runs=1 (got {self.num_runs}): a checkpoint holds one run"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"option 'methods' holds unknown methods {unknown}; expected some of {list(METHODS)}")
