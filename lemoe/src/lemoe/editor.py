"""The LEMoE editor: inserts the MoE adaptor, edits batch after batch, saves/loads the adaptor.

Per batch t (paper, "Module insertion" and "KV anchor routing"): add expert E_t and key k_t,
freeze all earlier experts and keys, and train E_t, k_t and the router projection with

    L = NLL(target tokens | routed to E_t) + w · CE(softmax_i(k_i · v_j), t)   (+ replay, below)

The routing cross-entropy teaches the router to send this batch's prompts to E_t; with
``router.replay`` the pooled prompt embeddings of earlier edits are kept and included with
their own experts as labels, so training the shared projection does not move them. With the
activation gate (``router.null_threshold='activation'``, lemoe.adaptor) a third term

    w_a · mean_u Δ_t(x_u) / sg(mean_e Δ_t(x_e))

pushes the new expert's activation on the unrelated calibration text u (lemoe.data.unrelated_text)
down relative to its activation on its own edit prompts e (sg = stop-gradient), the early stop
also waits until every edit is above all of u, and at the end of the batch ε_t is set between
the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from lemoe.adaptor import MoEAdaptor, activation, activation_threshold, ffn_path, get_submodule, hidden_size
from lemoe.config import AdaptorConfig, LEMoEConfig, RouterConfig, TrainConfig
from lemoe.data import EditRequest, unrelated_text
from lemoe.routing import pooled_embedding, topk_gate
from lemoe.subjects import subject_key
from lemoe.training import SequentialEditor, encode_texts, fresh_forward_inputs, module_input
from shared_utils.atomic import atomic_folder
from shared_utils.tracking import get_logger

log = get_logger("lemoe")

ADAPTOR_WEIGHTS = "adaptor.safetensors"
ADAPTOR_CONFIG = "adaptor_config.json"


def act_loss(act: dict[str, torch.Tensor], weight: float) -> torch.Tensor:
    """w_a · mean_u Δ_u / sg(mean_e Δ_e): the activation on unrelated text pushed down, scale-free by the
    edits' own mean (WISE's term for irrelevant inputs; its margin terms for the edits are left to the
    NLL, which moved the experts off their targets on SmolLM2, and to the early stop's separation check)."""
    return weight * act["unrelated"].mean() / act["edits"].mean().detach().clamp_min(1e-6)


class LEMoEEditor(SequentialEditor):
    """Wraps a causal LM; :meth:`edit` adds one expert per batch; ``editor.model`` is the edited model.

    The edited model works on its own (``model(...)``, ``model.generate(...)``): a forward
    pre-hook computes the instance-level routing on every fresh forward (no KV cache yet) from
    the prompt tokens and keeps it for the cached decoding steps that follow.
    """

    name = "lemoe"

    def __init__(self, model: nn.Module, tokenizer, config: LEMoEConfig | None = None):
        config = config or LEMoEConfig()
        super().__init__(model, tokenizer, config.adaptor.layer, config.train)
        self.config = config
        self.ffn_path = ffn_path(model, config.adaptor)
        ffn = get_submodule(model, self.ffn_path)
        ref = next(ffn.parameters())
        d_embed = model.get_input_embeddings().weight.shape[1]
        self.adaptor = MoEAdaptor(ffn, hidden_size(model), d_embed, config.adaptor, config.router).to(
            ref.device, ref.dtype
        )
        model.set_submodule(self.ffn_path, self.adaptor)
        for p in self.adaptor.router.parameters():
            p.requires_grad_(False)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.expert_requests: list[list[EditRequest]] = []
        self._prompt_mask: torch.Tensor | None = None
        self._training_expert: int | None = None
        self._batch_anchors: torch.Tensor | None = None
        self._act_inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # activation gate: FFN inputs, masks
        self._unrelated_inputs: tuple[torch.Tensor, torch.Tensor] | None = None  # computed on the first batch
        self._new_anchor_rows = 0
        self._hook = model.register_forward_pre_hook(self._route_hook, with_kwargs=True)
        if config.router.mode == "token":
            self.name = "token_moe"

    # ----- routing -------------------------------------------------------------------------
    def _uses_subjects(self) -> bool:
        router = self.config.router
        return router.pooling == "subject" or router.null_threshold == "subject"

    def pool(self, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ē, named): the routing value per instance and whether its prompt names an edited subject.

        ē is the mean input embedding over the prompt tokens in ``mask``, or with
        ``router.pooling='subject'`` over the subject span inside them (whole prompt when no stored
        subject is named). ``named`` is all True unless a subject option is on.
        """
        mask = mask.bool()
        named = torch.ones(mask.shape[0], dtype=torch.bool, device=mask.device)
        if self._uses_subjects():
            span = self.adaptor.subjects.find(input_ids, mask, self.tokenizer)
            named = span.any(-1)
            if self.config.router.pooling == "subject":
                mask = torch.where(named[:, None], span, mask)
        embeds = self.model.get_input_embeddings()(input_ids)
        return pooled_embedding(embeds.float(), mask), named

    @torch.no_grad()
    def route(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Instance gate (B, n_experts) from the prompt tokens in ``mask`` (all-zero row = no expert)."""
        e, named = self.pool(input_ids, mask)
        router = self.adaptor.router
        gate = topk_gate(router.scores(e.to(router.up.weight.dtype)), self.config.router.top_k)
        null = self.config.router.null_threshold
        if null == "calibrated" and self.adaptor.memory.anchors.shape[0] > 0:
            gate[self.adaptor.memory.similarity(e) < self.adaptor.memory.threshold] = 0.0
        elif null == "subject":
            gate[~named] = 0.0
        return gate

    def routed_expert(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Index of the top expert per instance, -1 where no expert fires."""
        gate = self.route(input_ids, mask)
        return torch.where(gate.sum(-1) > 0, gate.argmax(-1), torch.full_like(gate[:, 0], -1, dtype=torch.long))

    def _route_hook(self, _module, args, kwargs):
        if (
            self.config.router.mode != "kv_anchor"
            or not self.adaptor.enabled
            or self.adaptor.num_experts == 0
            or self._training_expert is not None
            or self._prompt_mask is not None
        ):
            return None
        inputs = fresh_forward_inputs(args, kwargs)
        if inputs is None or inputs[0] is None:
            return None
        self.adaptor.set_instance_gate(self.route(*inputs))
        self.adaptor.decide_mask = inputs[1]
        return None

    @contextmanager
    def _routing(self, input_ids, attention_mask, prompt_mask, training: bool = False) -> Iterator[None]:
        if training:
            n, b = self.adaptor.num_experts, input_ids.shape[0]
            gate = torch.zeros(b, n, device=input_ids.device)
            gate[:, self._training_expert] = 1.0
            self.adaptor.set_instance_gate(gate)
            self.adaptor.forced_expert = self._training_expert
        elif prompt_mask is not None and self.config.router.mode == "kv_anchor" and self.adaptor.num_experts:
            self.adaptor.set_instance_gate(self.route(input_ids, prompt_mask))
            self.adaptor.decide_mask = prompt_mask
        self._prompt_mask = prompt_mask
        try:
            yield
        finally:
            self._prompt_mask = None
            self.adaptor.forced_expert = None
            self.adaptor.decide_mask = None
            self.adaptor.set_instance_gate(None)

    @contextmanager
    def detached(self) -> Iterator[None]:
        """Run the model as if unedited (every expert off) inside the block."""
        self.adaptor.enabled = False
        try:
            yield
        finally:
            self.adaptor.enabled = True

    # ----- one batch -----------------------------------------------------------------------
    def _register_subjects(self, requests: list[EditRequest]) -> None:
        """Add the batch's subjects to the index (required by the subject options, kept whenever given)."""
        missing = [i for i, r in enumerate(requests) if not r.subject.strip()]
        if missing and self._uses_subjects():
            i = missing[0]
            raise ValueError(
                f"router.pooling={self.config.router.pooling!r} / router.null_threshold="
                f"{self.config.router.null_threshold!r} need the subject of every edit, but request {i} of this "
                f"batch ({requests[i].prompt!r}) has none ({len(missing)} of {len(requests)} lack one)"
            )
        self.adaptor.subjects.add([subject_key(self.tokenizer, r.subject) for r in requests if r.subject.strip()])

    def _begin_batch(self, requests: list[EditRequest]) -> list[nn.Parameter]:
        if self.config.router.mode == "kv_anchor":
            self._register_subjects(requests)
        cfg = self.config.adaptor
        if self.adaptor.num_experts < cfg.max_experts:
            idx = self.adaptor.add_expert(self.generator)
            self.expert_requests.append([])
        elif cfg.overflow == "reuse_last":
            idx = self.adaptor.num_experts - 1
            for p in [*self.adaptor.experts[idx].parameters(), self.adaptor.router.keys[idx]]:
                p.requires_grad_(True)
        else:
            raise RuntimeError(f"adaptor.max_experts={cfg.max_experts} reached and adaptor.overflow={cfg.overflow!r}")
        self._training_expert = idx
        self._replayed = self._replay_sample(self.expert_requests[idx])
        self.expert_requests[idx].extend(requests)
        params = [*self.adaptor.experts[idx].parameters(), self.adaptor.router.keys[idx]]
        params += [
            self.adaptor.router.down.weight,
            self.adaptor.router.down.bias,
            self.adaptor.router.up.weight,
            self.adaptor.router.up.bias,
        ]
        for p in params:
            p.requires_grad_(True)
        return params

    def _replay_sample(self, earlier: list[EditRequest]) -> list[EditRequest]:
        """Earlier edits of the reused expert replayed with this batch: all, or a seeded random sample of
        ``adaptor.replay_limit`` of them (bounded cost per batch past the expert cap)."""
        limit = self.config.adaptor.replay_limit
        if limit < 0 or len(earlier) <= limit:
            return list(earlier)
        pick = torch.randperm(len(earlier), generator=self.generator)[:limit].sort().values
        return [earlier[i] for i in pick.tolist()]

    def _training_requests(self, requests: list[EditRequest]) -> list[EditRequest]:
        return self._replayed + list(requests)

    def _prepare_encoded(self, enc: dict[str, torch.Tensor]) -> None:
        self._new_anchor_rows = enc["input_ids"].shape[0] - len(self._replayed)
        if self.config.router.mode == "kv_anchor":
            anchors, named = self.pool(enc["input_ids"], enc["prompt_mask"])
            self._batch_anchors = anchors.detach()
            if self.config.router.null_threshold == "activation":
                if self._unrelated_inputs is None:  # the same for every batch: nothing below the FFN is edited
                    u = encode_texts(self.tokenizer, unrelated_text(self.config.router.null_data), self.device)
                    self._unrelated_inputs = (self.ffn_inputs(u["input_ids"], u["attention_mask"]), u["attention_mask"])
                self._act_inputs = {
                    "edits": (self.ffn_inputs(enc["input_ids"], enc["attention_mask"]), enc["prompt_mask"]),
                    "unrelated": self._unrelated_inputs,
                }
            unnamed = int((~named[-self._new_anchor_rows :]).sum())
            if unnamed:
                log.warning(
                    "%d of %d edit prompts in this batch do not contain their subject's tokens: %s",
                    unnamed,
                    self._new_anchor_rows,
                    "their routing value pools the whole prompt"
                    if self.config.router.pooling == "subject"
                    else "the subject gate will not fire an expert for them",
                )
        else:  # token routing: every non-pad token's FFN input, captured on the first training forward
            self._batch_anchors, self.adaptor.captured = None, None
            self.adaptor.capture_tokens = enc["attention_mask"].bool()

    def ffn_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Inputs (B, T, d) of the wrapped FFN (they do not depend on any expert)."""
        return module_input(self.model, self.adaptor.ffn, input_ids, attention_mask).detach()

    def _activations(self) -> dict[str, torch.Tensor]:
        """Δ of the expert in training on its edit prompts and on the unrelated calibration text."""
        expert = self.adaptor.experts[self._training_expert]
        return {name: activation(expert, x, mask) for name, (x, mask) in self._act_inputs.items()}

    def _extra_loss(self) -> torch.Tensor | None:
        route = self._route_loss()
        if not self._act_inputs or self.config.router.activation_weight == 0:
            return route
        act = self._activations()
        return (
            act_loss(act, self.config.router.activation_weight)
            if route is None
            else route + act_loss(act, self.config.router.activation_weight)
        )

    def _converged(self) -> bool:
        """With the activation gate, a batch also needs every edit prompt above all unrelated text."""
        if not self._act_inputs:
            return True
        with torch.no_grad():
            act = self._activations()
        return bool(act["edits"].min() > act["unrelated"].max())

    def _route_loss(self) -> torch.Tensor | None:
        w = self.config.router.route_loss_weight
        if w == 0:
            return None
        if self._batch_anchors is None:
            self._batch_anchors = self.adaptor.captured.detach()
        x, y = (
            self._batch_anchors,
            torch.full((self._batch_anchors.shape[0],), self._training_expert, device=self.device),
        )
        memory = self.adaptor.memory
        if self.config.router.replay and memory.anchors.shape[0] > 0:
            keep = memory.experts != self._training_expert
            x, y = torch.cat([x, memory.anchors[keep]]), torch.cat([y, memory.experts[keep]])
        router = self.adaptor.router
        return w * F.cross_entropy(router.scores(x.to(router.up.weight.dtype)).float(), y)

    def _end_batch(self) -> None:
        idx = self._training_expert
        rows = (
            self._batch_anchors[-self._new_anchor_rows :]
            if self.config.router.mode == "kv_anchor"
            else self._batch_anchors
        )
        self.adaptor.memory.add(rows, idx)
        if self._act_inputs:
            with torch.no_grad():
                act = self._activations()
            self.adaptor.thresholds[idx] = activation_threshold(act["edits"], act["unrelated"])
            log.info(
                "expert %d: activation on edits %.3g-%.3g, on unrelated text %.3g-%.3g, threshold %.3g",
                idx,
                act["edits"].min(),
                act["edits"].max(),
                act["unrelated"].min(),
                act["unrelated"].max(),
                self.adaptor.thresholds[idx],
            )
            self._act_inputs = {}
        if self.config.router.mode == "kv_anchor":  # calibrated whatever the gate, so views can switch to it
            self.adaptor.memory.calibrate(self.config.router.null_quantile)
        for p in self.adaptor.parameters():
            p.requires_grad_(False)
        self.adaptor.capture_tokens, self.adaptor.captured = None, None
        self._training_expert, self._batch_anchors, self._replayed = None, None, []

    # ----- persistence ---------------------------------------------------------------------
    def adaptor_state(self) -> dict[str, torch.Tensor]:
        """Adaptor tensors without the wrapped (unchanged) FFN."""
        return {
            k: v.detach().cpu().contiguous() for k, v in self.adaptor.state_dict().items() if not k.startswith("ffn.")
        }

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the adaptor alone: ``adaptor.safetensors`` + ``adaptor_config.json``.

        The folder is written beside ``path`` and renamed into place (``atomic_folder``), so a
        crash while saving leaves the previous adaptor at ``path`` loadable.
        """
        meta = {
            "config": asdict(self.config),
            "num_experts": self.adaptor.num_experts,
            "ffn_path": self.ffn_path,
            "expert_sizes": [len(r) for r in self.expert_requests],
        }
        with atomic_folder(path) as tmp:
            save_file(self.adaptor_state(), str(tmp / ADAPTOR_WEIGHTS))
            (tmp / ADAPTOR_CONFIG).write_text(json.dumps(meta, indent=2))
        return Path(path)

    @classmethod
    def from_pretrained(cls, model: nn.Module, path: str | Path, tokenizer=None) -> LEMoEEditor:
        """Insert a saved adaptor into ``model`` (the same base model it was trained on)."""
        path = Path(path)
        meta = json.loads((path / ADAPTOR_CONFIG).read_text())
        raw = meta["config"]
        config = LEMoEConfig(
            adaptor=AdaptorConfig(**raw["adaptor"]),
            router=RouterConfig(**raw["router"]),
            train=TrainConfig(**raw["train"]),
            seed=raw["seed"],
        )
        editor = cls(model, tokenizer, config)
        for _ in range(meta["num_experts"]):
            editor.adaptor.add_expert(editor.generator)
        state = load_file(str(path / ADAPTOR_WEIGHTS))
        memory = editor.adaptor.memory
        memory.anchors = torch.zeros_like(state["memory.anchors"]).to(memory.anchors)
        memory.experts = torch.zeros_like(state["memory.experts"]).to(memory.experts.device)
        missing, unexpected = editor.adaptor.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("ffn.")]
        if missing or unexpected:
            raise ValueError(f"{path / ADAPTOR_WEIGHTS}: missing {missing}, unexpected {unexpected}")
        for p in editor.adaptor.parameters():
            p.requires_grad_(False)
        return editor
