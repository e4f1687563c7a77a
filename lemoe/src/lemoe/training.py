"""The sequential-editing loop shared by LEMoE and the baselines.

Training on a batch of edits minimises the NLL of the target tokens only (prompt and padding
are masked), with AdamW, a step budget and an early stop on the loss. Every method edits one
decoder layer, so all layers below it are frozen and unaffected by training: with
``train.cache_prefix`` their output is computed once per batch and each step runs only the
layers from the edited one upwards (the logits are taken at the target positions only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from lemoe.adaptor import find_layers_path, get_submodule
from lemoe.config import TrainConfig
from lemoe.data import EditRequest


def pair_ids(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids): the answer is tokenised on its own with a leading space, so its token ids
    are the same whatever the prompt is."""
    p_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
    return p_ids, tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"]


def encode_pairs(
    tokenizer,
    prompts: list[str],
    answers: list[str],
    device: torch.device | str = "cpu",
    suffixes: list[list[int]] | None = None,
) -> dict[str, torch.Tensor]:
    """Tokenise prompt + " " + answer (+ the token ids of ``suffixes``, one list per row), right-padded.

    Returns ``input_ids``, ``attention_mask``, ``labels`` (answer tokens, -100 elsewhere: a suffix is
    context, not a target), ``prompt_mask`` (1 on prompt tokens) and ``continuation_mask`` (True from the
    last answer token to the last suffix token: the positions that predict what follows the answer).
    """
    suffixes = suffixes if suffixes is not None else [[] for _ in prompts]
    rows, labels, prompt_masks, continuation = [], [], [], []
    for prompt, answer, suffix in zip(prompts, answers, suffixes, strict=True):
        p_ids, a_ids = pair_ids(tokenizer, prompt, answer)
        rows.append(p_ids + a_ids + list(suffix))
        labels.append([-100] * len(p_ids) + a_ids + [-100] * len(suffix))
        prompt_masks.append([1] * len(p_ids) + [0] * (len(a_ids) + len(suffix)))
        continuation.append([0] * (len(p_ids) + len(a_ids) - 1) + [1] * (len(suffix) + 1))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def padded(seqs, value):
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs], device=device)

    return {
        "input_ids": padded(rows, pad),
        "attention_mask": padded([[1] * len(r) for r in rows], 0),
        "labels": padded(labels, -100),
        "prompt_mask": padded(prompt_masks, 0),
        "continuation_mask": padded(continuation, 0).bool(),
    }


def left_padded(
    tokenizer, rows: list[list[int]], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of token-id lists padded on the left, as ``generate`` wants them."""
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


class _StopForward(Exception):
    pass


def fresh_forward_inputs(args: tuple, kwargs: dict) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
    """(input_ids, attention_mask) of a model forward that starts on a prompt, seen from a forward pre-hook
    (``with_kwargs=True``); None for a cached decoding step, which keeps the decision made on its prompt.
    A missing attention mask is all ones; either can be None when the call passes neither ids nor mask."""
    past = kwargs.get("past_key_values")
    if past is not None and hasattr(past, "get_seq_length") and past.get_seq_length() > 0:
        return None
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    mask = kwargs.get("attention_mask")
    if mask is None and input_ids is not None:
        mask = torch.ones_like(input_ids)
    return input_ids, mask


def decoder_base(model: nn.Module) -> tuple[nn.Module, str]:
    """(the transformer body that owns the layer list, the attribute name of that list)."""
    path = find_layers_path(model)
    parent, attr = path.rsplit(".", 1)
    return get_submodule(model, parent), attr


def supports_prefix_cache(model: nn.Module) -> bool:
    """Running only the upper layers is exact for LLaMA/Mistral/GPT-2 bodies with uniform layer types."""
    try:
        path = find_layers_path(model)
    except ValueError:
        return False
    types = getattr(model.config, "layer_types", None)
    return path in ("model.layers", "transformer.h") and (types is None or len(set(types)) == 1)


@torch.no_grad()
def module_input(
    model: nn.Module, module: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The first input of ``module`` (a submodule of ``model``) on this forward, which stops there."""
    captured = {}

    def grab(_module, args, kwargs):
        captured["h"] = args[0] if args else kwargs["hidden_states"]
        raise _StopForward

    handle = module.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return captured["h"]


def layer_input(model: nn.Module, layer: int, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden states entering decoder layer ``layer`` (the forward stops there)."""
    base, attr = decoder_base(model)
    return module_input(model, getattr(base, attr)[layer], input_ids, attention_mask)


def encode_texts(tokenizer, texts: list[str], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Tokenise whole texts, right-padded: ``input_ids`` and ``attention_mask``."""
    rows = [tokenizer(t, add_special_tokens=True)["input_ids"] for t in texts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device),
    }


@contextmanager
def upper_layers_only(model: nn.Module, layer: int) -> Iterator[nn.Module]:
    """Temporarily cut the layer list to ``layers[layer:]``; yields the transformer body."""
    base, attr = decoder_base(model)
    full = getattr(base, attr)
    setattr(base, attr, nn.ModuleList(list(full)[layer:]))
    try:
        yield base
    finally:
        setattr(base, attr, full)


def upper_hidden(model: nn.Module, layer: int, h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Final hidden states computed from the hidden states ``h`` entering layer ``layer``."""
    with upper_layers_only(model, layer) as base:
        if hasattr(base, "wpe"):  # GPT-2 adds position embeddings to inputs_embeds: remove them first
            positions = torch.arange(h.shape[1], device=h.device)
            h = h - base.wpe(positions)[None]
        return base(inputs_embeds=h, attention_mask=attention_mask, use_cache=False).last_hidden_state


def target_nll(model: nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL of the label tokens from final hidden states (the LM head runs on those positions only)."""
    shift_h, shift_y = hidden[:, :-1], labels[:, 1:]
    keep = shift_y != -100
    logits = model.get_output_embeddings()(shift_h[keep])
    return F.cross_entropy(logits.float(), shift_y[keep])


def continuation_logits(model: nn.Module, hidden: torch.Tensor, continuation_mask: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the next token at the positions of ``continuation_mask`` (encode_pairs): right
    after each row's last answer token, and after each token of its suffix."""
    return F.log_softmax(model.get_output_embeddings()(hidden[continuation_mask]).float(), -1)


def continuation_kl(before: torch.Tensor, now: torch.Tensor) -> torch.Tensor:
    """KL(before || now) of the post-target next-token distributions, averaged over positions: with weight
    ``train.continuation_weight`` it keeps an edit from taking over the text that follows its target
    (e.g. "Forgotten Realms Realms Realms"); ``before`` is the model's own prediction at the first step."""
    return F.kl_div(now, before, log_target=True, reduction="batchmean")


def label_predictions(model: nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    """Argmax token at every label position (the position before it predicts it), one tensor per row."""
    keep = labels[:, 1:] != -100
    argmax = model.get_output_embeddings()(hidden[:, :-1][keep]).argmax(-1)
    return list(argmax.cpu().split(keep.sum(1).tolist()))


@torch.no_grad()
def prepare_eval(
    model: nn.Module,
    tokenizer,
    prompts: list[str],
    answers: list[str],
    layer: int,
    batch_size: int = 32,
    cache_prefix: bool = True,
) -> list[dict[str, torch.Tensor]]:
    """Encode prompt/answer pairs in batches; with ``cache_prefix`` also store the hidden states entering
    ``layer`` (valid for every method that edits only that layer and above, so computed once)."""
    device = next(model.parameters()).device
    batches = []
    for start in range(0, len(prompts), batch_size):
        enc = encode_pairs(tokenizer, prompts[start : start + batch_size], answers[start : start + batch_size], device)
        if cache_prefix and supports_prefix_cache(model):
            enc["h"] = layer_input(model, layer, enc["input_ids"], enc["attention_mask"])
        batches.append(enc)
    return batches


class SequentialEditor:
    """Base of every method: edits one layer batch after batch, scores through :meth:`logits`.

    Subclasses implement :meth:`_begin_batch` (create/unfreeze what trains, return the
    parameters) and may add a loss term in :meth:`_extra_loss` and a routing context in
    :meth:`_routing`.
    """

    name = "base"

    def __init__(self, model: nn.Module, tokenizer, layer: int, train: TrainConfig, lr: float | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.layer = layer
        self.train_cfg = train
        self.lr = train.lr if lr is None else lr
        self.history: list[dict] = []
        # mixed precision of every forward (training and scoring); the experiment sets accelerate's
        # ``Accelerator.autocast`` here, so bf16 on a GPU keeps the trained parameters in fp32
        self.autocast: Callable[[], AbstractContextManager] = nullcontext
        for p in model.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _begin_batch(self, requests: list[EditRequest]) -> list[nn.Parameter]:
        """Create/unfreeze what trains on this batch; return those parameters."""
        raise NotImplementedError

    def _training_requests(self, requests: list[EditRequest]) -> list[EditRequest]:
        """The requests trained on for this batch (LEMoE past its expert cap adds replayed ones)."""
        return requests

    def _prepare_encoded(self, enc: dict[str, torch.Tensor]) -> None:
        """Look at the encoded training batch before the first step (e.g. to pool routing anchors)."""

    def _extra_loss(self) -> torch.Tensor | None:
        return None

    def _converged(self) -> bool:
        """Whether the batch may stop early once the NLL is below ``early_stop_loss``."""
        return True

    @contextmanager
    def _routing(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_mask: torch.Tensor | None,
        training: bool = False,
    ):
        yield

    @contextmanager
    def _forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        prompt_mask: torch.Tensor | None,
        training: bool = False,
    ):
        """The context of every forward of the edited model: the method's routing, under ``self.autocast``."""
        with self._routing(input_ids, attention_mask, prompt_mask, training), self.autocast():
            yield

    def _end_batch(self) -> None:
        """Freeze what trained on the batch, store anchors, calibrate thresholds."""

    def _layer_cache(self, enc: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Hidden states entering the edited layer (nothing below it changes during a batch), or None when
        ``train.cache_prefix`` is off or the model's layers cannot be run from there."""
        if not (self.train_cfg.cache_prefix and supports_prefix_cache(self.model)):
            return None
        return layer_input(self.model, self.layer, enc["input_ids"], enc["attention_mask"])

    def _final_hidden(self, enc: dict[str, torch.Tensor], h: torch.Tensor | None) -> torch.Tensor:
        """Final hidden states of the training batch ``enc``: from the cached layer input ``h`` through the
        upper layers only, or a full forward when there is no cache."""
        if h is not None:
            return upper_hidden(self.model, self.layer, h, enc["attention_mask"])
        return self.model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True, use_cache=False
        ).hidden_states[-1]

    def edit(self, requests: list[EditRequest]) -> dict[str, float]:
        """Train on one batch of edit requests; returns the final loss and the steps taken."""
        if not requests:
            raise ValueError("edit() needs at least one request")
        start = time.perf_counter()
        was_training = self.model.training
        self.model.eval()  # no dropout: edits are deterministic under the seed
        weight, n_after = self.train_cfg.continuation_weight, self.train_cfg.continuation_tokens - 1
        after = {}  # request -> the model's own greedy tokens after its target (train.continuation_tokens > 1)
        if weight and n_after:
            after = dict(zip(map(id, requests), self.continuations(requests, n_after), strict=True))
        params = self._begin_batch(requests)
        train_requests = self._training_requests(requests)
        enc = encode_pairs(
            self.tokenizer,
            [r.prompt for r in train_requests],
            [r.target for r in train_requests],
            self.device,
            [after.get(id(r), []) for r in train_requests],  # replayed edits: the next token only
        )
        self._prepare_encoded(enc)
        optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.train_cfg.weight_decay)
        h = self._layer_cache(enc)
        bar = tqdm(
            range(self.train_cfg.max_steps),
            desc=f"{self.name} batch {len(self.history) + 1}",
            disable=not self.train_cfg.progress,
            leave=False,
        )
        loss_value, steps, before = float("nan"), 0, None
        for step in range(1, self.train_cfg.max_steps + 1):
            steps = step
            with self._forward(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"], training=True):
                hidden = self._final_hidden(enc, h)
                nll = target_nll(self.model, hidden, enc["labels"])
                extra = self._extra_loss()
                now = continuation_logits(self.model, hidden, enc["continuation_mask"]) if weight else None
            loss = nll if extra is None else nll + extra
            if now is not None:
                before = now.detach() if before is None else before
                loss = loss + weight * continuation_kl(before, now)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = float(nll.detach())
            bar.update(1)
            bar.set_postfix(nll=f"{loss_value:.4f}")
            if loss_value < self.train_cfg.early_stop_loss and self._converged():
                break
        bar.close()
        self._end_batch()
        self.model.train(was_training)
        record = {
            "batch": len(self.history) + 1,
            "edits": len(requests),
            "sequences": len(train_requests),
            "steps": steps,
            "nll": loss_value,
            "train_s": time.perf_counter() - start,  # wall clock, machine-dependent; sequences x steps is not
        }
        self.history.append(record)
        return record

    @torch.no_grad()
    def continuations(self, requests: list[EditRequest], max_new_tokens: int) -> list[list[int]]:
        """The model's own greedy ``max_new_tokens`` after each request's prompt + target (the text the
        anti-hijack term keeps, ``train.continuation_tokens``), each cut before its first end or pad token."""
        rows = [p + a for p, a in (pair_ids(self.tokenizer, r.prompt, r.target) for r in requests)]
        ids, mask = left_padded(self.tokenizer, rows, self.device)
        stop = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None}
        out = []
        for row in self.generate(ids, mask, max_new_tokens)[:, ids.shape[1] :].tolist():
            ends = [i for i, t in enumerate(row) if t in stop]
            out.append(row[: ends[0]] if ends else row)
        return out

    @torch.no_grad()
    def predict(self, batches: list[dict[str, torch.Tensor]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(argmax at the answer positions, answer tokens) per example of batches from :func:`prepare_eval`."""
        preds, targets = [], []
        for enc in batches:
            with self._forward(enc["input_ids"], enc["attention_mask"], enc["prompt_mask"]):
                if "h" in enc:
                    hidden = upper_hidden(self.model, self.layer, enc["h"], enc["attention_mask"])
                else:
                    base, _ = decoder_base(self.model)
                    hidden = base(
                        input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], use_cache=False
                    ).last_hidden_state
                preds.extend(label_predictions(self.model, hidden, enc["labels"]))
            labels = enc["labels"][:, 1:].cpu()
            targets.extend(row[row != -100] for row in labels)
        return preds, targets

    @torch.no_grad()
    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits of the edited model (``prompt_mask`` tells instance-level routers the prompt span)."""
        with self._forward(input_ids, attention_mask, prompt_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        """Greedy continuation of left-padded prompts (routing decided on the prompt)."""
        with self._forward(input_ids, attention_mask, None):
            return self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
            )
