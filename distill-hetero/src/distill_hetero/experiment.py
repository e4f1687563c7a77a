"""Data preparation, evaluation and the default reproduction (four rows at equal budget)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from distill_hetero.builtin import builtin_split
from distill_hetero.config import PACKAGE, RunConfig
from distill_hetero.data import (
    Example,
    MissingSharedSet,
    Record,
    collate,
    format_prompt,
    load_records,
    tokenize_example,
)
from distill_hetero.distiller import TeacherCache, supervised_positions
from distill_hetero.extraction import num_layers, selected_logits
from distill_hetero.generation import generate, teacher_answers
from distill_hetero.mapping import resolve_mapping
from distill_hetero.metrics import corpus_rouge_l
from distill_hetero.models import load_teacher
from distill_hetero.trainer import export_student, train
from shared_utils.atomic import save_figure
from shared_utils.config import dump_config, load_config
from shared_utils.device import apply_threads
from shared_utils.errors import ConfigError
from shared_utils.results import (
    atomic_write_text,
    load_results,
    render_markdown_table,
    replace_marked_section,
    write_results,
)
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

log = get_logger(__name__)

# The four rows of the default reproduction: overrides on top of the base config (same data, steps, seed).
ROWS: dict[str, dict] = {
    "sft": {"loss.output": ["ce"], "loss.intermediate": None, "loss.weighting": "fixed"},
    "kd_fkl": {"loss.output": ["fkl"], "loss.intermediate": None, "loss.weighting": "fixed"},
    "kd_inter_fixed": {"loss.output": ["fkl"], "loss.weighting": "fixed"},
    "kd_inter_learned": {"loss.output": ["fkl"], "loss.weighting": "uncertainty"},
}
ROW_LABELS = {
    "teacher": "Teacher (SmolLM2-135M-Instruct)",
    "sft": "SFT (CE on teacher answers)",
    "kd_fkl": "KD (forward KL)",
    "kd_inter_fixed": "KD + intermediate (fixed ratios)",
    "kd_inter_learned": "KD + intermediate (learned ratios)",
}


def training_records(cfg: RunConfig, teacher, tokenizer) -> tuple[list[Record], list[Record]]:
    """``(train, built-in held-out)`` records with their targets: references where the data has them
    (``data.targets=auto``), else the teacher's cached greedy answers (sequence-level KD data)."""
    held: list[Record] = []
    if cfg.data.train == "builtin":
        train_raw, held_raw = builtin_split(
            cfg.data.builtin_train_size, cfg.data.builtin_eval_size, cfg.data.builtin_split_seed
        )
        train_records = [Record(format_prompt(r["instruction"], r["input"]), []) for r in train_raw]
        held = [Record(format_prompt(r["instruction"], r["input"]), []) for r in held_raw]
    else:
        train_records = load_records(cfg.data.train, require_output=cfg.data.targets == "references")
    use_teacher = cfg.data.targets == "teacher" or (
        cfg.data.targets == "auto" and not all(r.references for r in train_records)
    )
    need = (train_records if use_teacher else []) + held
    if need:
        answers = teacher_answers(
            teacher,
            tokenizer,
            [r.prompt for r in need],
            cfg.teacher,
            cfg.data.cache_dir,
            cfg.data.max_response_tokens,
            cfg.data.max_prompt_tokens,
        )
        for record, answer in zip(need, answers):
            record.references = [answer]
    return train_records, held


def tokenize_records(cfg: RunConfig, tokenizer, records: list[Record]) -> list[Example]:
    return [
        tokenize_example(
            tokenizer, i, r.prompt, r.references[0], cfg.data.max_prompt_tokens, cfg.data.max_response_tokens
        )
        for i, r in enumerate(records)
    ]


def eval_sets(cfg: RunConfig, held: list[Record]) -> dict[str, list[Record]]:
    """Each evaluation set by name. A shared set that is not on disk is an error, or with
    ``eval.skip_missing`` skipped with a warning."""
    sets = {}
    for name in cfg.eval.datasets:
        if name == "builtin":
            if held:
                sets[name] = held
            continue
        try:
            sets[name] = load_records(name, split="test", limit=cfg.eval.max_examples, require_output=True)
        except MissingSharedSet as err:
            if not cfg.eval.skip_missing:
                raise
            log.warning("skipping evaluation set %s (eval.skip_missing): %s", name, err)
    return sets


def evaluate(model, tokenizer, sets: dict[str, list[Record]], cfg: RunConfig, desc: str = "eval") -> dict:
    """ROUGE-L (x100) per set: greedy, each sampling seed, and the mean over seeds."""
    metrics: dict[str, float] = {}
    modes = ([("greedy", False, 0)] if cfg.eval.greedy else []) + [(f"seed{s}", True, s) for s in cfg.eval.sample_seeds]
    for name, records in sets.items():
        prompts, refs = [r.prompt for r in records], [r.references for r in records]
        sampled = []
        for label, do_sample, seed in modes:
            outputs = generate(
                model,
                tokenizer,
                prompts,
                cfg.eval.max_new_tokens,
                cfg.eval.batch_size,
                cfg.data.max_prompt_tokens,
                do_sample=do_sample,
                seed=seed,
                temperature=cfg.eval.temperature,
                top_p=cfg.eval.top_p,
                desc=f"{desc} {name} {label}",
            )
            metrics[f"rougeL_{label}/{name}"] = corpus_rouge_l(outputs, refs)
            if do_sample:
                sampled.append(metrics[f"rougeL_{label}/{name}"])
        if sampled:
            metrics[f"rougeL_sampled/{name}"] = sum(sampled) / len(sampled)
        metrics[f"n/{name}"] = len(records)
    return metrics


@torch.no_grad()
def heldout_nll(model, tokenizer, records: list[Record], cfg: RunConfig, batch_size: int = 16) -> float:
    """Mean per-token negative log-likelihood (nats) of the reference responses (+ EOS) given the prompts:
    on the built-in held-out set, how well the student predicts the teacher's greedy answers. Much more
    sensitive than ROUGE-L when the students are small and briefly trained."""
    examples = tokenize_records(cfg, tokenizer, records)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    for start in range(0, len(examples), batch_size):
        batch = {
            k: v.to(device) for k, v in collate(examples[start : start + batch_size], tokenizer.pad_token_id).items()
        }
        positions, targets = supervised_positions(batch["labels"])
        logits = selected_logits(model, batch["input_ids"], batch["attention_mask"], positions)
        total += float(torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum"))
        count += targets.numel()
    return total / count


def student_metrics(result, tokenizer, sets: dict[str, list[Record]], cfg: RunConfig, desc: str = "eval") -> dict:
    """ROUGE-L of a trained student on ``sets``, its held-out NLL on ``builtin`` and its last training loss."""
    metrics = evaluate(result.distiller.student, tokenizer, sets, cfg, desc=desc)
    if "builtin" in sets:
        metrics["heldout_nll/builtin"] = heldout_nll(result.distiller.student, tokenizer, sets["builtin"], cfg)
    metrics["final_train_loss"] = result.history[-1]["loss"]
    return metrics


def run_row(name: str, cfg: RunConfig, teacher, tokenizer, examples, sets, cache, results_dir: Path) -> dict:
    """Train one row, export its student, evaluate, write ``<results_dir>/<name>.json``."""
    start = time.time()
    result = train(cfg, teacher, tokenizer, examples, teacher_cache=cache)
    train_s = time.time() - start
    export_student(result, tokenizer, Path(cfg.output_dir) / "student")
    metrics = student_metrics(result, tokenizer, sets, cfg, desc=name)
    result.accelerator.end_training()
    metrics.update(
        {
            "train_time_s": train_s,
            "train_tokens": sum(h["tokens"] for h in result.history),
        }
    )
    return write_results(
        results_dir / f"{name}.json",
        metrics,
        cfg,
        wall_time_s=time.time() - start,
        extra={
            "row": name,
            "label": ROW_LABELS.get(name, name),
            "mapping": result.mapping,
            "history": result.history,
            "teacher_cache_covered_mass": cache.mean_covered_mass if cache else None,
        },
    )


def reproduce(
    config_path: str | None,
    overrides: list[str],
    results_dir: str | Path,
    rows: list[str],
    readme: str | Path | None = None,
    with_teacher: bool = True,
) -> list[dict]:
    """The default reproduction: prepare data once, cache the teacher once, train and evaluate each row."""
    results_dir = Path(results_dir)
    base = load_config(RunConfig, config_path, overrides, package=PACKAGE)
    apply_threads(base.num_threads)
    row_cfgs = {}
    for name in rows:
        if name not in ROWS:
            raise ConfigError(f"unknown row {name!r}; known rows: {', '.join(ROWS)}")
        row_cfgs[name] = load_config(
            RunConfig,
            config_path,
            [*overrides, *_as_overrides(ROWS[name]), "--name", name, "--output_dir", f"{base.output_dir}/{name}"],
            package=PACKAGE,
        )
    seed_everything(base.seed)
    start = time.time()
    teacher, tokenizer = load_teacher(base.teacher, base.train.teacher_dtype)
    train_records, held = training_records(base, teacher, tokenizer)
    examples = tokenize_records(base, tokenizer, train_records)
    sets = eval_sets(base, held)
    log.info("train examples: %d; eval sets: %s", len(examples), {k: len(v) for k, v in sets.items()})
    cache = None
    if base.train.teacher_cache_top_k > 0 and any(
        c.loss.output != ["ce"] or c.loss.intermediate for c in row_cfgs.values()
    ):
        layers = sorted(
            {
                t
                for c in row_cfgs.values()
                if c.loss.intermediate
                for _, t in resolve_mapping(c.mapping, c.student.num_layers, num_layers(teacher))
            }
        )
        cache = TeacherCache(
            teacher,
            examples,
            layers,
            base.train.teacher_cache_top_k,
            base.loss.temperature,
            len(tokenizer),
            tokenizer.pad_token_id,
        )
        log.info(
            "teacher cache: %d examples, layers %s, top-%d covers %.4f of the mass",
            len(examples),
            layers,
            base.train.teacher_cache_top_k,
            cache.mean_covered_mass,
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    dump_config(base, results_dir / "config.yaml")
    written = []
    if with_teacher:
        t0 = time.time()
        greedy_only = replace(base, eval=replace(base.eval, sample_seeds=[]))
        metrics = evaluate(
            teacher, tokenizer, {k: v for k, v in sets.items() if k != "builtin"}, greedy_only, "teacher"
        )
        written.append(
            write_results(
                results_dir / "teacher.json",
                metrics,
                base,
                wall_time_s=time.time() - t0,
                extra={"row": "teacher", "label": ROW_LABELS["teacher"]},
            )
        )
    for name in tqdm(rows, desc="rows"):
        written.append(run_row(name, row_cfgs[name], teacher, tokenizer, examples, sets, cache, results_dir))
    render_outputs(results_dir, readme)
    log.info("reproduction finished in %.0f s", time.time() - start)
    return written


def _as_overrides(row: dict) -> list[str]:
    out = []
    for key, value in row.items():
        out += [f"--{key}", "none" if value is None else (str(value) if not isinstance(value, list) else repr(value))]
    return out


def render_outputs(results_dir: str | Path, readme: str | Path | None = None) -> str:
    """``table.md`` and ``loss_curves.png`` from the results JSONs; the README table if given."""
    results_dir = Path(results_dir)
    rows = [r for r in load_results(results_dir) if "row" in r]
    for r in rows:
        if r.get("history"):
            last = r["history"][-1]
            r["final_output_loss"] = next(
                last[f"loss/{n}"] for n in ("fkl", "ce", "rkl", "skl", "srkl") if f"loss/{n}" in last
            )
            r["final_inter_loss"] = last.get("loss/inter")
    order = ["teacher", *ROWS]
    rows.sort(key=lambda r: order.index(r["row"]) if r["row"] in order else len(order))
    sets = []
    for r in rows:
        sets += [k.split("/", 1)[1] for k in r["metrics"] if k.startswith("n/") and k.split("/", 1)[1] not in sets]
    sets.sort(key=lambda name: name != "builtin")
    sampled = any(k.startswith("rougeL_sampled/") for r in rows for k in r["metrics"])
    columns = {"label": "Method"}
    for s in sets:
        columns[f"metrics.rougeL_greedy/{s}"] = f"{s} (n={_first(rows, f'n/{s}')})"
    columns["metrics.heldout_nll/builtin"] = "held-out NLL ↓"
    columns["final_output_loss"] = "final train output loss"
    columns["final_inter_loss"] = "final train inter loss"
    columns["metrics.train_time_s"] = "train s"
    body = render_markdown_table(
        rows,
        columns,
        digits=2,
        bold_best={**{f"metrics.rougeL_greedy/{s}": "max" for s in sets}, "metrics.heldout_nll/builtin": "min"},
    )
    if sampled:
        seeds = sorted(
            {k.split("/")[0][len("rougeL_seed") :] for r in rows for k in r["metrics"] if k.startswith("rougeL_seed")}
        )
        sampled_cols = {"label": "Method", **{f"metrics.rougeL_sampled/{s}": s for s in sets}}
        body += (
            f"\nSampled decoding (temperature 1, mean over seeds {', '.join(seeds)}; the teacher row is greedy "
            "only, to save time):\n\n"
            + render_markdown_table(
                [r for r in rows if any(k.startswith("rougeL_sampled/") for k in r["metrics"])],
                sampled_cols,
                digits=2,
                bold_best={f"metrics.rougeL_sampled/{s}": "max" for s in sets},
            )
        )
    note = (
        "ROUGE-L (x100, rouge-score RougeL with stemming, max over references), greedy decoding; references "
        "of `builtin` are the teacher's greedy answers to held-out built-in instructions (so the teacher is "
        "not scored there). Held-out NLL: nats per token of those teacher answers under the student. Final train "
        "output loss: CE for SFT, forward KL otherwise (last step, unweighted).\n\n"
    )
    table = note + body
    atomic_write_text(results_dir / "table.md", table)
    plot_loss_curves(rows, results_dir / "loss_curves.png")
    if readme is not None:
        replace_marked_section(readme, "results", table)
    return table


def _first(rows: list[dict], key: str):
    return next((r["metrics"][key] for r in rows if key in r["metrics"]), "?")


def plot_loss_curves(rows: list[dict], path: Path) -> None:
    """Per-row output-loss curve (and the intermediate loss and learned ratios where present)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in rows if r.get("history")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in trained:
        steps = [h["step"] for h in r["history"]]
        for key in [k for k in r["history"][0] if k.startswith("loss/") and k != "loss/inter"]:
            axes[0].plot(steps, [h[key] for h in r["history"]], label=f"{r['row']} {key[5:]}")
        if "loss/inter" in r["history"][0]:
            axes[1].plot(steps, [h["loss/inter"] for h in r["history"]], label=r["row"])
        for key in [k for k in r["history"][0] if k.startswith("weight/")]:
            axes[2].plot(steps, [h[key] for h in r["history"]], label=f"{r['row']} {key[7:]}")
    for ax, title in zip(axes, ["output loss (CE or forward KL)", "intermediate loss", "loss ratios"]):
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


SUMMARY_METRICS = {
    "heldout_nll/builtin": "held-out NLL ↓",
    "rougeL_greedy/builtin": "builtin greedy",
    "rougeL_sampled/builtin": "builtin sampled",
    "shared_greedy": "shared sets greedy (mean of 5)",
    "shared_sampled": "shared sets sampled (mean of 5)",
}


def summarize_seeds(folders: list[str | Path]) -> str:
    """Markdown table of each row's key metrics over several seed folders: "mean (seed values)"."""
    per_row: dict[str, dict[str, list[float]]] = {}
    labels = {}
    for folder in folders:
        for r in load_results(folder):
            if r.get("row") not in ROWS:
                continue
            m = dict(r["metrics"])
            for kind in ("greedy", "sampled"):
                shared = [v for k, v in m.items() if k.startswith(f"rougeL_{kind}/") and not k.endswith("/builtin")]
                if shared:
                    m[f"shared_{kind}"] = sum(shared) / len(shared)
            labels[r["row"]] = r["label"]
            for key in SUMMARY_METRICS:
                if key in m:
                    per_row.setdefault(r["row"], {}).setdefault(key, []).append(m[key])
    table_rows = []
    for name in [n for n in ROWS if n in per_row]:
        row = {"Method": labels[name]}
        for key, header in SUMMARY_METRICS.items():
            values = per_row[name].get(key, [])
            row[header] = (
                f"{sum(values) / len(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})" if values else None
            )
        table_rows.append(row)
    return render_markdown_table(table_rows, ["Method", *SUMMARY_METRICS.values()])
