"""Context rows for a seq2seq task (issue 14): an autoregressive baseline, a causal LM
fine-tuned with LoRA (Hu et al. 2022) on the same training pairs and decoded greedily, and
copy-the-source; both scored like the diffusion rows (the run tokenizer's word normalisation,
DiffuSeq's sentence BLEU-4, ROUGE-L, BERTScore, Dist-1; see ``metrics``) on the same records.

The LM sees ``"Source: {src}\\nParaphrase:"`` and learns ``" {trg}"`` + EOS (loss on the target
tokens only); decoding is greedy up to EOS or a newline.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.data import load_pairs
from infodiffusion.evaluate import normaliser
from infodiffusion.metrics import BertScorer, corpus_sentence_bleu, dist_1, rouge_l
from shared_utils.tracking import get_logger

logger = get_logger(__name__)

PROMPT = "Source: {src}\nParaphrase:"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraBaselineConfig:
    """The autoregressive baseline's own settings (the data come from the diffusion config)."""

    model: str = "smollm2-135m-instruct"
    lr: float = 1e-3
    steps: int = 100
    batch_size: int = 8
    lora_r: int = 8
    lora_alpha: int = 16
    max_new_tokens: int = 40
    seed: int = 0


def encode_pair(tokenizer, src: str, trg: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt + target + EOS, and labels that are -100 on the prompt."""
    prompt = tokenizer(PROMPT.format(src=src), add_special_tokens=False)["input_ids"]
    target = tokenizer(" " + trg, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt + target, [-100] * len(prompt) + target


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (-100 at padding)."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def finetune(model, tokenizer, pairs: list[dict], cfg: LoraBaselineConfig) -> list[float]:
    """LoRA fine-tuning (all attention and MLP projections) for ``cfg.steps`` steps of
    ``cfg.batch_size`` pairs drawn by a seeded permutation (epochs repeat it); the losses."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        model,
        LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"),
    )
    examples = [encode_pair(tokenizer, p["src"], p["trg"]) for p in pairs]
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(examples), generator=gen).tolist()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=cfg.lr)
    peft_model.train()
    losses = []
    for step in range(cfg.steps):
        start = (step * cfg.batch_size) % len(order)
        idx = (order + order)[start : start + cfg.batch_size]
        loss = peft_model(**collate([examples[i] for i in idx], tokenizer.pad_token_id)).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if step % 10 == 0:
            logger.info("lora step %d loss %.4f", step, losses[-1])
    peft_model.eval()
    return losses


@torch.no_grad()
def greedy_decode(model, tokenizer, sources: list[str], max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """Greedy continuation of each prompt (left-padded batches), cut at EOS or a newline."""
    tokenizer.padding_side = "left"
    outputs = []
    for i in range(0, len(sources), batch_size):
        prompts = [PROMPT.format(src=s) for s in sources[i : i + batch_size]]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        for row in gen[:, enc["input_ids"].shape[1] :]:
            outputs.append(tokenizer.decode(row, skip_special_tokens=True).split("\n")[0].strip())
    return outputs


def score_texts(hyps: list[str], refs: list[str], cfg: InfoDiffusionConfig, scorer: BertScorer | None) -> dict:
    """BLEU, ROUGE-L, Dist-1 (and BERTScore when a scorer is given) of one hypothesis per
    reference, both through the run tokenizer's word normalisation as the diffusion rows."""
    norm = normaliser(cfg)
    hyps, refs = [norm(h) for h in hyps], [norm(r) for r in refs]
    out = {"bleu": corpus_sentence_bleu(hyps, refs), "rouge_l": rouge_l(hyps, refs), "dist_1": dist_1(hyps)}
    if scorer is not None:
        out["bertscore"] = scorer.f1(hyps, refs)
    return out


def _scorer(cfg: InfoDiffusionConfig) -> BertScorer | None:
    return BertScorer(cfg.eval.bertscore_model, cfg.eval.bertscore_layer) if cfg.eval.bertscore_model else None


def _data_note(cfg: InfoDiffusionConfig) -> dict:
    return {
        "dataset": cfg.data.dataset,
        "train_split": cfg.data.train_split,
        "eval_split": cfg.data.eval_split,
        "max_eval": cfg.data.max_eval,
    }


def copy_source_row(cfg: InfoDiffusionConfig, output: Path) -> dict:
    """Copy-the-source: each source as its own paraphrase, scored on the evaluation records."""
    from shared_utils.results import write_results

    pairs = load_pairs(cfg.data.dataset, cfg.data.eval_split, cfg.data.max_eval)
    metrics = score_texts([p["src"] for p in pairs], [p["trg"] for p in pairs], cfg, _scorer(cfg))
    return write_results(output, {**metrics, "n": len(pairs)}, extra={"row": "copy-the-source", **_data_note(cfg)})


def lora_row(cfg: InfoDiffusionConfig, lora: LoraBaselineConfig, output: Path) -> dict:
    """Fine-tune ``lora.model`` with LoRA on ``data.train_split``, decode ``data.eval_split``
    greedily, score it, and write the results JSON (with every hypothesis) to ``output``."""
    from shared_utils.models import load_causal_lm
    from shared_utils.results import write_results
    from shared_utils.seeding import seed_everything

    seed_everything(lora.seed)
    train_pairs = load_pairs(cfg.data.dataset, cfg.data.train_split, cfg.data.max_train)
    eval_pairs = load_pairs(cfg.data.dataset, cfg.data.eval_split, cfg.data.max_eval)
    model, tokenizer = load_causal_lm(lora.model)
    t0 = time.time()
    losses = finetune(model, tokenizer, train_pairs, lora)
    train_s = time.time() - t0
    hyps = greedy_decode(model, tokenizer, [p["src"] for p in eval_pairs], lora.max_new_tokens)
    metrics = score_texts(hyps, [p["trg"] for p in eval_pairs], cfg, _scorer(cfg))
    metrics.update(n=len(eval_pairs), train_s=train_s, final_loss=sum(losses[-10:]) / len(losses[-10:]))
    extra = {
        "row": f"{lora.model} + LoRA (greedy)",
        "lora": asdict(lora),
        **_data_note(cfg),
        "train_pairs": len(train_pairs),
        "losses": losses,
        "samples": [{"src": p["src"], "ref": p["trg"], "hyp": h} for p, h in zip(eval_pairs, hyps)],
    }
    return write_results(output, metrics, wall_time_s=time.time() - t0, extra=extra, extra_packages=("peft",))


def render_context_table(folder: Path) -> str:
    """Markdown table of the context rows (``*.json`` in ``folder`` with a ``row`` key)."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if "row" not in record:
            continue
        m = record["metrics"]
        cells = [record["row"], f"{record['eval_split']} (first {m['n']})"]
        cells += [f"{m[k]:.4f}" if k in m else "—" for k in ("bleu", "rouge_l", "bertscore", "dist_1")]
        cells.append(record.get("git_commit") or "—")
        rows.append("| " + " | ".join(cells) + " |")
    head = "| row | evaluated on | BLEU ↑ | ROUGE-L ↑ | BERTScore ↑ | Dist-1 ↑ | commit |\n" + "| --- " * 7 + "|"
    return head + "\n" + "\n".join(rows) + f"\n\nGenerated by `infodiffusion context` from `{folder}/*.json`.\n"
