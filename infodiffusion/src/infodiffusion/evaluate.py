"""Sample a trained run on an evaluation split, score it, and trace BLEU along the reverse process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from infodiffusion.config import InfoDiffusionConfig, SampleConfig
from infodiffusion.data import decode, load_pairs, oov_counts, word_normaliser
from infodiffusion.metrics import BertScorer, corpus_sentence_bleu, evaluate_candidates
from infodiffusion.model import DiffusionTransformer
from infodiffusion.run import RunArtifacts, load_artifacts
from infodiffusion.sampling import generate_distributed
from shared_utils.checkpoints import CheckpointManager
from shared_utils.errors import ModelNotFound, RecordError
from shared_utils.records import parse_records, read_records
from shared_utils.tracking import get_logger

logger = get_logger(__name__)


def model_folder(run_dir: str | Path, use_ema: bool = True) -> Path:
    """The newest weights of a run: its final ``ema/`` (or ``model/``) folder, or, when the run
    stopped before its last step (or was resumed and stopped again), its latest checkpoint's."""
    run_dir = Path(run_dir)
    name = "ema" if use_ema else "model"
    final, summary = run_dir / name, run_dir / "train_summary.json"
    final_step = -1
    if final.is_dir():
        final_step = json.loads(summary.read_text())["steps"] if summary.is_file() else 0
    checkpoints = CheckpointManager(run_dir)
    steps = [s for s in checkpoints.steps() if (checkpoints.path(s) / name).is_dir()]
    if steps and steps[-1] > final_step:
        latest = steps[-1]
        logger.warning(
            "%s has no final %s/ of step %d or later: using checkpoint step_%d", run_dir, name, latest, latest
        )
        return checkpoints.path(latest) / name
    if final_step < 0:
        raise ModelNotFound(f"{run_dir} holds no trained model: no {name}/ and no checkpoints/step_N/{name}/")
    return final


def load_model(run_dir: str | Path, use_ema: bool = True) -> DiffusionTransformer:
    return DiffusionTransformer.from_pretrained(model_folder(run_dir, use_ema))


def sample_run(
    cfg: InfoDiffusionConfig,
    run_dir: str | Path,
    accelerator=None,
    n_candidates: int | None = None,
    sample_cfg: SampleConfig | None = None,
    record: bool = False,
    artifacts: RunArtifacts | None = None,
) -> list[dict]:
    """Candidates for the evaluation split: dicts with source/candidate/seed/src/ref/hyp."""
    from accelerate import PartialState

    # cpu=True lets accelerate run torchrun-launched CPU processes over gloo
    state = accelerator or PartialState(cpu=not torch.cuda.is_available())
    sample_cfg = sample_cfg or cfg.sample
    model = load_model(run_dir, sample_cfg.use_ema).to(state.device)
    artifacts = artifacts or load_artifacts(cfg, run_dir)
    pairs = load_pairs(cfg.data.dataset, cfg.data.eval_split, cfg.data.max_eval)
    ids, mask = artifacts.encode(pairs, cfg.data.seq_len)
    n = n_candidates or sample_cfg.candidates
    results = generate_distributed(state, model, artifacts.diffusion, ids, mask, sample_cfg, cfg.seed, n, record)
    texts = decode(
        torch.stack([r["ids"] for r in results]),
        mask[[r["source"] for r in results]],
        artifacts.vocab,
        artifacts.tokenizer,
    )
    # references and sources stay raw text: the restricted vocabulary limits what the model
    # can emit, never what it is scored against (issue 14); their out-of-vocabulary counts
    # are kept per record and reported by ``score_records``
    refs = [p["trg"] for p in pairs]
    ref_oov = oov_counts(refs, artifacts.tokenizer, artifacts.vocab)
    src_oov = oov_counts([p["src"] for p in pairs], artifacts.tokenizer, artifacts.vocab)
    records = []
    for r, text in zip(results, texts):
        rec = {
            "source": r["source"],
            "candidate": r["candidate"],
            "seed": r["seed"],
            "src": pairs[r["source"]]["src"],
            "ref": refs[r["source"]],
            "hyp": text,
            "ref_oov": ref_oov[r["source"]][0],
            "ref_tokens": ref_oov[r["source"]][1],
            "src_oov": src_oov[r["source"]][0],
            "src_tokens": src_oov[r["source"]][1],
        }
        if record:
            steps = r["trajectory"]
            rec["trajectory"] = decode(steps, mask[r["source"]].expand_as(steps), artifacts.vocab, artifacts.tokenizer)
        records.append(rec)
    return records


def write_samples(records: list[dict], path: str | Path) -> None:
    from shared_utils.results import atomic_write_text

    lines = [json.dumps({k: v for k, v in r.items() if k != "trajectory"}) for r in records]
    atomic_write_text(path, "\n".join(lines) + "\n")


SAMPLE_FIELDS = {"source": int, "candidate": int, "hyp": str, "ref": str}


def read_samples(path: str | Path) -> list[dict]:
    """The records of a ``samples.jsonl`` written by ``sample``; a malformed one is an error naming it."""

    def check(raw, index: int) -> dict:
        where = f"{path} record {index + 1}"
        if not isinstance(raw, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        for key, kind in SAMPLE_FIELDS.items():
            if not isinstance(raw.get(key), kind):
                raise RecordError(f"{where}: field {key!r} must be a {kind.__name__}, got {raw.get(key)!r}")
        return raw

    return parse_records(read_records(path), check, str(path))


def group_candidates(records: list[dict]) -> tuple[list[list[str]], list[str]]:
    """Candidates per source (ordered by candidate index) and the references."""
    by_source: dict[int, dict[int, str]] = {}
    refs: dict[int, str] = {}
    for r in records:
        by_source.setdefault(r["source"], {})[r["candidate"]] = r["hyp"]
        refs[r["source"]] = r["ref"]
    sources = sorted(by_source)
    return [[by_source[s][c] for c in sorted(by_source[s])] for s in sources], [refs[s] for s in sources]


def normaliser(cfg: InfoDiffusionConfig):
    """The run tokenizer's word normalisation (see ``data.word_normaliser``), applied alike to
    hypotheses and raw references before the whitespace-split metrics."""
    from infodiffusion.run import load_tokenizer

    return word_normaliser(load_tokenizer(cfg.data.tokenizer))


def oov_rates(records: list[dict]) -> dict[str, float]:
    """Share of reference and source tokens outside the model's vocabulary (one count per source)."""
    by_source = {r["source"]: r for r in records if "ref_tokens" in r}
    out = {}
    for side in ("ref", "src"):
        total = sum(r[f"{side}_tokens"] for r in by_source.values())
        if total:
            out[f"oov_rate_{side}"] = sum(r[f"{side}_oov"] for r in by_source.values()) / total
    return out


def score_records(records: list[dict], cfg: InfoDiffusionConfig, scorer: BertScorer | None = None) -> dict:
    """The six metrics (hypotheses and raw references normalised alike) and the OOV rates."""
    candidates, refs = group_candidates(records)
    norm = normaliser(cfg)
    candidates = [[norm(c) for c in cands] for cands in candidates]
    refs = [norm(r) for r in refs]
    if scorer is None and cfg.eval.bertscore_model:
        scorer = BertScorer(cfg.eval.bertscore_model, cfg.eval.bertscore_layer)
    metrics = evaluate_candidates(candidates, refs, scorer, cfg.eval.mbr_quality, cfg.eval.mbr_diversity)
    return {**metrics, **oov_rates(records)}


def bleu_curve(records: list[dict], normalise=None) -> list[float]:
    """Mean BLEU of the x̂₀ decoded after each reverse step (records with a trajectory), against
    the references passed through ``normalise`` (see :func:`normaliser`)."""
    normalise = normalise or (lambda text: text)
    refs = [normalise(r["ref"]) for r in records]
    n_steps = len(records[0]["trajectory"])
    return [corpus_sentence_bleu([r["trajectory"][k] for r in records], refs) for k in range(n_steps)]


def steps_to_fraction(curve: list[float], fraction: float = 0.95) -> int:
    """Fewest reverse steps after which BLEU stays at or above ``fraction`` of its final value."""
    target = fraction * curve[-1]
    below = [k for k, v in enumerate(curve) if v < target]
    return (below[-1] + 2) if below else 1


def summarise_curve(curve: list[float], grid: int) -> dict:
    return {
        "bleu_by_step": [float(np.round(v, 5)) for v in curve],
        "reverse_steps": grid,
        "steps_to_95pct": steps_to_fraction(curve, 0.95),
    }
