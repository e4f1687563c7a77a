"""Data preparation, evaluation and the default reproduction (five trained rows at equal budget)."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from distill_hetero.builtin import builtin_split
from distill_hetero.config import PACKAGE, RunConfig
from distill_hetero.cross_tokenizer import CrossTokenizerData, load_student_tokenizer
from distill_hetero.data import (
    Example,
    MissingSharedSet,
    Record,
    collate,
    fit_prompt,
    format_prompt,
    load_records,
    tokenize_example,
)
from distill_hetero.distiller import TeacherCache, supervised_positions
from distill_hetero.extraction import num_layers, selected_logits
from distill_hetero.generation import generate, teacher_answers
from distill_hetero.mapping import resolve_mapping
from distill_hetero.metrics import rouge_l_scores
from distill_hetero.models import load_teacher
from distill_hetero.trainer import export_student, train
from shared_utils.atomic import headless_pyplot, save_figure
from shared_utils.config import dump_config, load_config
from shared_utils.device import apply_threads
from shared_utils.errors import ConfigError
from shared_utils.intervals import mean_ci, paired_diff_ci, ratio_ci
from shared_utils.results import (
    atomic_write_text,
    git_commit,
    load_results,
    render_markdown_table,
    replace_marked_section,
    write_results,
)
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

log = get_logger(__name__)

# The trained rows of the default reproduction: overrides on top of the base config (same data, steps, seed).
ROWS: dict[str, dict] = {
    "sft": {"loss.output": ["ce"], "loss.intermediate": None, "loss.weighting": "fixed"},
    "kd_fkl": {"loss.output": ["fkl"], "loss.intermediate": None, "loss.weighting": "fixed"},
    "kd_inter_fixed": {"loss.output": ["fkl"], "loss.weighting": "fixed"},
    "kd_inter_learned": {"loss.output": ["fkl"], "loss.weighting": "uncertainty"},
    "kd_inter_dwa": {"loss.output": ["fkl"], "loss.weighting": "dwa"},
}
# Rows run only when named (``--rows``), as their own part: the student on the bert-base-uncased WordPiece
# vocabulary of the embedded MiniLM, CE on its own tokenisation + ULD + span-aligned intermediate layers.
CROSS_ROWS: dict[str, dict] = {
    "kd_uld_inter": {
        "student.tokenizer": "minilm-l6",
        "loss.output": ["ce", "uld"],
        "loss.weighting": "fixed",
    },
}
KNOWN_ROWS = {**ROWS, **CROSS_ROWS}
ROW_LABELS = {
    "teacher": "Teacher (SmolLM2-135M-Instruct)",
    "constant": 'Constant answer ("The answer is")',
    "echo": "Echo the instruction",
    "sft": "SFT (CE on teacher answers)",
    "kd_fkl": "KD (forward KL)",
    "kd_inter_fixed": "KD + intermediate (fixed ratios)",
    "kd_inter_learned": "KD + intermediate (learned ratios)",
    "kd_inter_dwa": "KD + intermediate (adaptive ratios, DWA)",
    "kd_uld_inter": "Cross-tokenizer: CE + ULD + span-aligned intermediate (WordPiece student)",
}


def _builtin_record(raw: dict) -> Record:
    return Record(format_prompt(raw["instruction"], raw["input"]), [], raw["instruction"], raw["input"])


def training_records(cfg: RunConfig, teacher, tokenizer) -> tuple[list[Record], list[Record]]:
    """``(train, built-in held-out)`` records with their targets: references where the data has them
    (``data.targets=auto``), else the teacher's cached greedy answers (sequence-level KD data)."""
    held: list[Record] = []
    if cfg.data.train == "builtin":
        train_raw, held_raw = builtin_split(
            cfg.data.builtin_train_size, cfg.data.builtin_eval_size, cfg.data.builtin_split_seed
        )
        train_records = [_builtin_record(r) for r in train_raw]
        held = [_builtin_record(r) for r in held_raw]
    else:
        train_records = load_records(cfg.data.train, require_output=cfg.data.targets == "references")
    train_records = [fit_prompt(tokenizer, r, cfg.data.max_prompt_tokens) for r in train_records]
    held = [fit_prompt(tokenizer, r, cfg.data.max_prompt_tokens) for r in held]
    missing = [i for i, r in enumerate(train_records) if not r.references]
    if cfg.data.targets == "auto" and missing and len(missing) < len(train_records):
        shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise ConfigError(
            f"data.train={cfg.data.train}: {len(missing)} of {len(train_records)} records have no output "
            f"(records {shown}); with data.targets=auto either all or none must have one. Use "
            "--data.targets teacher (teacher answers for every record) or fix the data"
        )
    use_teacher = cfg.data.targets == "teacher" or (cfg.data.targets == "auto" and bool(missing))
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


def tokenize_records(cfg: RunConfig, tokenizer, records: list[Record], with_offsets: bool = False) -> list[Example]:
    return [
        tokenize_example(
            tokenizer,
            i,
            r.prompt,
            r.references[0],
            cfg.data.max_prompt_tokens,
            cfg.data.max_response_tokens,
            with_offsets,
        )
        for i, r in enumerate(records)
    ]


def training_examples(
    cfg: RunConfig, tokenizer, records: list[Record]
) -> tuple[list[Example], CrossTokenizerData | None]:
    """``(examples the student trains on, cross-tokenizer data)``: the teacher's tokenisation and None,
    or with ``student.tokenizer`` the student's tokenisation of the same texts, and the teacher's with
    the character-span alignment of the two (same indices, so a ``TeacherCache`` of the teacher's
    examples serves both)."""
    if not cfg.student.tokenizer:
        return tokenize_records(cfg, tokenizer, records), None
    student_tokenizer = load_student_tokenizer(cfg.student.tokenizer)
    student = tokenize_records(cfg, student_tokenizer, records, with_offsets=True)
    teacher = tokenize_records(cfg, tokenizer, records, with_offsets=True)
    return student, CrossTokenizerData.build(student_tokenizer, student, teacher, tokenizer.pad_token_id)


def eval_sets(cfg: RunConfig, held: list[Record], tokenizer=None) -> dict[str, list[Record]]:
    """Each evaluation set by name. A shared set that is not on disk is an error, or with
    ``eval.skip_missing`` skipped with a warning. With a ``tokenizer`` every prompt is fitted to
    ``data.max_prompt_tokens`` keeping its instruction (:func:`~distill_hetero.data.fit_prompt`)."""
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
    return fit_sets(sets, tokenizer, cfg.data.max_prompt_tokens) if tokenizer is not None else sets


def fit_sets(sets: dict[str, list[Record]], tokenizer, max_tokens: int) -> dict[str, list[Record]]:
    """Every prompt fitted to ``max_tokens`` of ``tokenizer``, keeping its instruction."""
    return {k: [fit_prompt(tokenizer, r, max_tokens) for r in v] for k, v in sets.items()}


def score_cell(metrics: dict, examples: dict, label: str, name: str, outputs: list[str], records: list[Record]) -> None:
    """ROUGE-L of ``outputs`` on one set: the mean, its bootstrap 95% interval, and per example the
    output and its score (kept in the results, so every cell can be re-scored or re-sampled)."""
    scores = rouge_l_scores(outputs, [r.references for r in records])
    metrics[f"rougeL_{label}/{name}"] = sum(scores) / len(scores)
    metrics[f"rougeL_{label}_ci/{name}"] = mean_ci(scores)
    examples.setdefault(name, {})[label] = [{"output": o, "rougeL": v} for o, v in zip(outputs, scores)]


def evaluate(model, tokenizer, sets: dict[str, list[Record]], cfg: RunConfig, desc: str = "eval") -> tuple[dict, dict]:
    """``(metrics, per-example outputs)``: ROUGE-L (x100) per set for greedy decoding, each sampling
    seed and the mean over seeds, each with a bootstrap 95% interval over the set's examples."""
    metrics: dict = {}
    examples: dict = {}
    modes = ([("greedy", False, 0)] if cfg.eval.greedy else []) + [(f"seed{s}", True, s) for s in cfg.eval.sample_seeds]
    for name, records in sets.items():
        sampled = []
        for label, do_sample, seed in modes:
            outputs = generate(
                model,
                tokenizer,
                [r.prompt for r in records],
                cfg.eval.max_new_tokens,
                cfg.eval.batch_size,
                cfg.data.max_prompt_tokens,
                do_sample=do_sample,
                seed=seed,
                temperature=cfg.eval.temperature,
                top_p=cfg.eval.top_p,
                desc=f"{desc} {name} {label}",
            )
            score_cell(metrics, examples, label, name, outputs, records)
            if do_sample:
                sampled.append([e["rougeL"] for e in examples[name][label]])
        if sampled:
            per_example = [sum(v) / len(v) for v in zip(*sampled)]
            metrics[f"rougeL_sampled/{name}"] = sum(per_example) / len(per_example)
            metrics[f"rougeL_sampled_ci/{name}"] = mean_ci(per_example)
        metrics[f"n/{name}"] = len(records)
    return metrics, examples


BASELINES = {
    "constant": lambda record: CONSTANT_ANSWER,
    "echo": lambda record: record.instruction or record.prompt,
}
CONSTANT_ANSWER = "The answer is"


def baseline_metrics(name: str, sets: dict[str, list[Record]]) -> tuple[dict, dict]:
    """The trivial rows, scored like the models (greedy column): ``constant`` answers "The answer is"
    to everything, ``echo`` repeats the instruction."""
    metrics: dict = {}
    examples: dict = {}
    for set_name, records in sets.items():
        score_cell(metrics, examples, "greedy", set_name, [BASELINES[name](r) for r in records], records)
        metrics[f"n/{set_name}"] = len(records)
    return metrics, examples


@torch.no_grad()
def per_example_nll(model, tokenizer, records: list[Record], cfg: RunConfig, batch_size: int = 16) -> tuple[list, list]:
    """Per example: summed negative log-likelihood (nats) of the reference response (+ EOS) given the
    prompt, and its token count."""
    examples = tokenize_records(cfg, tokenizer, records)
    device = next(model.parameters()).device
    sums, counts = [], []
    was_training = model.training
    model.eval()
    for start in range(0, len(examples), batch_size):
        batch = {
            k: v.to(device) for k, v in collate(examples[start : start + batch_size], tokenizer.pad_token_id).items()
        }
        positions, targets = supervised_positions(batch["labels"])
        logits = selected_logits(model, batch["input_ids"], batch["attention_mask"], positions)
        nll = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
        per_row = positions.sum(1).tolist()
        sums += [float(chunk.sum()) for chunk in nll.split(per_row)]
        counts += per_row
    model.train(was_training)
    return sums, counts


def heldout_nll(model, tokenizer, records: list[Record], cfg: RunConfig, batch_size: int = 16) -> float:
    """Mean per-token negative log-likelihood (nats) of the reference responses (+ EOS) given the prompts:
    on the built-in held-out set, how well the student predicts the teacher's greedy answers. Much more
    sensitive than ROUGE-L when the students are small and briefly trained."""
    sums, counts = per_example_nll(model, tokenizer, records, cfg, batch_size)
    return sum(sums) / sum(counts)


def student_metrics(
    result, tokenizer, sets: dict[str, list[Record]], cfg: RunConfig, desc: str = "eval"
) -> tuple[dict, dict]:
    """ROUGE-L of a trained student on ``sets``, its held-out NLL on ``builtin`` (with a bootstrap
    interval; per-example values kept) and its last training loss."""
    metrics, examples = evaluate(result.distiller.student, tokenizer, sets, cfg, desc=desc)
    if "builtin" in sets:
        # per token of the student's own tokenisation: not comparable across vocabularies, kept apart
        kind = "heldout_nll_student_tokens" if cfg.student.tokenizer else "heldout_nll"
        sums, counts = per_example_nll(result.distiller.student, tokenizer, sets["builtin"], cfg)
        metrics[f"{kind}/builtin"] = sum(sums) / sum(counts)
        metrics[f"{kind}_ci/builtin"] = ratio_ci(sums, counts)
        examples.setdefault("builtin", {})[kind.replace("heldout_", "")] = [
            {"sum": t, "tokens": c} for t, c in zip(sums, counts)
        ]
    metrics["final_train_loss"] = result.history[-1]["loss"]
    return metrics, examples


def run_row(name: str, cfg: RunConfig, teacher, tokenizer, records, examples, sets, cache, results_dir: Path) -> dict:
    """Train one row, export its student, evaluate, write ``<results_dir>/<name>.json``. A
    cross-tokenizer row trains on its own tokenisation of ``records`` and is evaluated (prompts fitted,
    outputs decoded) with its own tokenizer."""
    start = time.time()
    cross = None
    if cfg.student.tokenizer:
        examples, cross = training_examples(cfg, tokenizer, records)
        sets = fit_sets(sets, cross.student_tokenizer, cfg.data.max_prompt_tokens)
    result = train(cfg, teacher, tokenizer, examples, teacher_cache=cache, cross=cross)
    train_s = time.time() - start
    student_tokenizer = cross.student_tokenizer if cross else tokenizer
    export_student(result, student_tokenizer, Path(cfg.output_dir) / "student")
    metrics, per_example = student_metrics(result, student_tokenizer, sets, cfg, desc=name)
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
            "teacher_cache_sha256": cache.digest() if cache else None,
            "cpu_kernels": cpu_kernels(),
            "examples": per_example,
        },
    )


# CPU features that change which kernels torch and MKL run (and so the float rounding)
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def cpu_kernels() -> dict:
    """What decides the rounding of a CPU run besides the code: the processor, torch's ATen CPU
    capability (the vectorised kernels it dispatches to), the features MKL picks its GEMM code path
    from, the thread count and the environment variables that override these. Two runs of the same
    commit on machines that differ here can differ in the 7th digit of the teacher's outputs and, after
    training, in a few greedy outputs (results/distill-hetero/rerun_check)."""
    model, flags = platform.processor(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "aten_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": [f for f in KERNEL_FLAGS if f in flags],
        "torch_threads": torch.get_num_threads(),
        "env": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA") if k in os.environ},
    }


def build_teacher_cache(base: RunConfig, cfgs: list[RunConfig], teacher, tokenizer, examples) -> TeacherCache | None:
    """The teacher's outputs (top-``train.teacher_cache_top_k``) and the hidden states of every teacher
    layer some config in ``cfgs`` aligns, computed once for ``examples``; None when the cache is off
    (``teacher_cache_top_k: 0``) or no config needs the teacher."""
    if base.train.teacher_cache_top_k <= 0 or not any(c.loss.output != ["ce"] or c.loss.intermediate for c in cfgs):
        return None
    layers = sorted(
        {
            t
            for c in cfgs
            if c.loss.intermediate
            for _, t in resolve_mapping(c.mapping, c.student.num_layers, num_layers(teacher))
        }
    )
    return TeacherCache(
        teacher,
        examples,
        layers,
        base.train.teacher_cache_top_k,
        base.loss.temperature,
        len(tokenizer),
        tokenizer.pad_token_id,
    )


def reproduce(
    config_path: str | None,
    overrides: list[str],
    results_dir: str | Path,
    rows: list[str] | None = None,
    readme: str | Path | None = None,
    with_teacher: bool = True,
    reference: str | Path | None = None,
    section: str = "results",
    skip_done: bool = False,
) -> list[dict]:
    """The default reproduction: prepare data once, cache the teacher once, train and evaluate each row
    (``rows``; None: all of ``ROWS``; the cross-tokenizer rows only when named). ``reference`` and
    ``section``: see :func:`render_outputs`. ``skip_done``: a row whose results file was written by the
    current commit is kept, not rerun (parts of a split reproduction)."""
    results_dir = Path(results_dir)
    rows = list(ROWS) if rows is None else rows
    if skip_done:
        done = {r.get("row") for r in load_results(results_dir) if r.get("git_commit") == git_commit()}
        log.info("skipping rows already written by this commit: %s", sorted(done & set(rows)) or "none")
        rows = [r for r in rows if r not in done]
    base = load_config(RunConfig, config_path, overrides, package=PACKAGE)
    apply_threads(base.num_threads)
    row_cfgs = {}
    for name in rows:
        if name not in KNOWN_ROWS:
            raise ConfigError(f"unknown row {name!r}; known rows: {', '.join(KNOWN_ROWS)}")
        row_cfgs[name] = load_config(
            RunConfig,
            config_path,
            [*overrides, *_as_overrides(KNOWN_ROWS[name]), "--name", name, "--output_dir", f"{base.output_dir}/{name}"],
            package=PACKAGE,
        )
    seed_everything(base.seed)
    start = time.time()
    teacher, tokenizer = load_teacher(base.teacher, base.train.teacher_dtype)
    train_records, held = training_records(base, teacher, tokenizer)
    examples = tokenize_records(base, tokenizer, train_records)
    sets = eval_sets(base, held, tokenizer)
    log.info("train examples: %d; eval sets: %s", len(examples), {k: len(v) for k, v in sets.items()})
    cache = build_teacher_cache(base, list(row_cfgs.values()), teacher, tokenizer, examples)
    if cache is not None:
        log.info(
            "teacher cache: %d examples, layers %s, top-%d covers %.4f of the mass",
            len(examples),
            cache.layers,
            base.train.teacher_cache_top_k,
            cache.mean_covered_mass,
        )
    results_dir.mkdir(parents=True, exist_ok=True)
    dump_config(base, results_dir / "config.yaml")
    written = []
    if with_teacher:
        t0 = time.time()
        greedy_only = replace(base, eval=replace(base.eval, sample_seeds=[]))
        metrics, per_example = evaluate(
            teacher, tokenizer, {k: v for k, v in sets.items() if k != "builtin"}, greedy_only, "teacher"
        )
        written.append(
            write_results(
                results_dir / "teacher.json",
                metrics,
                base,
                wall_time_s=time.time() - t0,
                extra={
                    "row": "teacher",
                    "label": ROW_LABELS["teacher"],
                    "examples": per_example,
                    "cpu_kernels": cpu_kernels(),
                },
            )
        )
    for name in BASELINES:
        metrics, per_example = baseline_metrics(name, sets)
        written.append(
            write_results(
                results_dir / f"{name}.json",
                metrics,
                base,
                extra={"row": name, "label": ROW_LABELS[name], "examples": per_example},
            )
        )
    for name in tqdm(rows, desc="rows"):
        written.append(
            run_row(name, row_cfgs[name], teacher, tokenizer, train_records, examples, sets, cache, results_dir)
        )
    render_outputs(results_dir, readme, reference, section)
    log.info("reproduction finished in %.0f s", time.time() - start)
    return written


def _as_overrides(row: dict) -> list[str]:
    out = []
    for key, value in row.items():
        out += [f"--{key}", "none" if value is None else (str(value) if not isinstance(value, list) else repr(value))]
    return out


def _with_ci(metrics: dict, key: str) -> str | None:
    """``"value [low, high]"`` for a metric with a stored interval (``<kind>_ci/<set>``)."""
    if key not in metrics:
        return None
    kind, name = key.split("/", 1)
    ci = metrics.get(f"{kind}_ci/{name}")
    return f"{metrics[key]:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{metrics[key]:.2f}"


def _greedy_scores(row: dict, name: str) -> list[float] | None:
    cells = row.get("examples", {}).get(name, {}).get("greedy")
    return [e["rougeL"] for e in cells] if cells else None


def _nll_per_example(row: dict) -> list[float] | None:
    cells = row.get("examples", {}).get("builtin", {}).get("nll")
    return [e["sum"] / e["tokens"] for e in cells] if cells else None


def diff_from_kd(rows: list[dict], sets: list[str], reference: str = "kd_fkl") -> str:
    """Markdown table of each trained row minus KD (paired bootstrap over the same examples, greedy
    ROUGE-L per set, and held-out NLL per example): ``difference [95% interval]``."""
    by_name = {r["row"]: r for r in rows}
    if reference not in by_name:
        return ""
    base = by_name[reference]
    table_rows = []
    for r in rows:
        if r["row"] not in KNOWN_ROWS or r["row"] == reference:
            continue
        row = {"Method": f"{r['label']} − KD"}
        for name in sets:
            a, b = _greedy_scores(r, name), _greedy_scores(base, name)
            if a and b:
                mean, ci = paired_diff_ci(a, b)
                row[name] = f"{mean:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}]"
        a, b = _nll_per_example(r), _nll_per_example(base)
        if a and b:
            mean, ci = paired_diff_ci(a, b)
            row["held-out NLL (per-example mean) ↓"] = f"{mean:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"
        table_rows.append(row)
    headers = ["Method", *sets, "held-out NLL (per-example mean) ↓"]
    return render_markdown_table(table_rows, headers)


def render_outputs(
    results_dir: str | Path,
    readme: str | Path | None = None,
    reference: str | Path | None = None,
    section: str = "results",
) -> str:
    """``table.md``, ``loss_curves.png`` and ``loss_ratios.png`` from the results JSONs; the README table
    (between the ``section`` markers) if given. Rows written by different commits are refused (a table
    mixing them does not reproduce). ``reference``: a results folder (of the main part) whose KD row is
    shown beside this folder's rows and is the reference of their differences; its commit is named."""
    results_dir = Path(results_dir)
    rows = [r for r in load_results(results_dir) if "row" in r]
    commits = {r.get("git_commit") for r in rows}
    if len(commits) > 1:
        raise ConfigError(
            f"{results_dir}: rows written by different commits "
            + "; ".join(f"{r['row']}: {r.get('git_commit')}" for r in rows)
            + " (rerun them together)"
        )
    reference_note = ""
    if reference is not None and not any(r["row"] == "kd_fkl" for r in rows):
        kd = [r for r in load_results(reference) if r.get("row") == "kd_fkl"]
        if not kd:
            raise ConfigError(f"reference folder {reference} has no kd_fkl row")
        rows += kd
        reference_note = (
            f"The KD row is read from `{Path(reference).name}/` (commit `{kd[0].get('git_commit')}`), the same "
            "evaluation examples; the held-out NLL of a student with its own vocabulary is per token of its "
            "tokenisation (in its JSON as `heldout_nll_student_tokens`), not comparable, so not shown. "
        )
    for r in rows:
        if r.get("history"):
            last = r["history"][-1]
            r["final_output_loss"] = next(
                last[f"loss/{n}"] for n in ("fkl", "uld", "ce", "rkl", "skl", "srkl") if f"loss/{n}" in last
            )
            r["final_inter_loss"] = last.get("loss/inter")
    order = ["teacher", *BASELINES, *KNOWN_ROWS]
    rows.sort(key=lambda r: order.index(r["row"]) if r["row"] in order else len(order))
    sets = []
    for r in rows:
        sets += [k.split("/", 1)[1] for k in r["metrics"] if k.startswith("n/") and k.split("/", 1)[1] not in sets]
    sets.sort(key=lambda name: name != "builtin")
    table_rows = []
    for r in rows:
        m = r["metrics"]
        row = {"Method": r["label"]}
        for s in sets:
            row[f"{s} (n={_first(rows, f'n/{s}')})"] = _with_ci(m, f"rougeL_greedy/{s}")
        row["held-out NLL ↓"] = _with_ci(m, "heldout_nll/builtin")
        row["final train output loss"] = r.get("final_output_loss")
        row["final train inter loss"] = r.get("final_inter_loss")
        row["train s"] = m.get("train_time_s")
        table_rows.append(row)
    body = render_markdown_table(table_rows, list(table_rows[0]), digits=2)
    sampled_rows = [r for r in rows if any(k.startswith("rougeL_sampled/") for k in r["metrics"])]
    if sampled_rows:
        seeds = sorted(
            {
                k.split("/")[0][len("rougeL_seed") :]
                for r in rows
                for k in r["metrics"]
                if k.startswith("rougeL_seed") and not k.split("/")[0].endswith("_ci")  # not the intervals
            }
        )
        body += (
            f"\nSampled decoding (temperature 1, per-example mean over seeds {', '.join(seeds)}; the teacher "
            "row is greedy only, to save time):\n\n"
            + render_markdown_table(
                [
                    {"Method": r["label"], **{s: _with_ci(r["metrics"], f"rougeL_sampled/{s}") for s in sets}}
                    for r in sampled_rows
                ],
                ["Method", *sets],
            )
        )
    diff = diff_from_kd(rows, sets)
    if diff:
        body += "\nDifference from KD on the same examples (greedy ROUGE-L; paired bootstrap 95% interval):\n\n" + diff
    commit = next(iter(commits), None)
    note = (
        "ROUGE-L (x100, rouge-score RougeL with stemming, max over references), greedy decoding, "
        "with a bootstrap 95% interval over the set's examples in brackets; references "
        "of `builtin` are the teacher's greedy answers to held-out built-in instructions (so the teacher is "
        "not scored there). Held-out NLL: nats per token of those teacher answers under the student. Final train "
        "output loss: CE for SFT, ULD for the cross-tokenizer row, forward KL otherwise (last step, unweighted). "
        f"Per-example outputs and scores are in each row's JSON (`examples`). All rows from commit `{commit}`"
        f"{' but the reference KD row' if reference_note else ''}. {reference_note}\n\n"
    )
    table = note + body
    atomic_write_text(results_dir / "table.md", table)
    plot_loss_curves(rows, results_dir / "loss_curves.png")
    plot_loss_ratios(rows, results_dir / "loss_ratios.png")
    if readme is not None:
        replace_marked_section(readme, section, table)
    return table


def _first(rows: list[dict], key: str):
    return next((r["metrics"][key] for r in rows if key in r["metrics"]), "?")


def plot_loss_curves(rows: list[dict], path: Path) -> None:
    """Per-row output-loss curve, and the intermediate loss where present."""
    plt = headless_pyplot()
    trained = [r for r in rows if r.get("history")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for r in trained:
        steps = [h["step"] for h in r["history"]]
        for key in [k for k in r["history"][0] if k.startswith("loss/") and k != "loss/inter"]:
            axes[0].plot(steps, [h[key] for h in r["history"]], label=f"{r['row']} {key[5:]}")
        if "loss/inter" in r["history"][0]:
            axes[1].plot(steps, [h["loss/inter"] for h in r["history"]], label=r["row"])
    for ax, title in zip(axes, ["output loss (CE or forward KL)", "intermediate loss"]):
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _weight_names(row: dict) -> list[str]:
    return [k[len("weight/") :] for k in row["history"][0] if k.startswith("weight/")] if row.get("history") else []


def plot_loss_ratios(rows: list[dict], path: Path) -> None:
    """The loss ratios over training of every row that weights two or more losses (fixed, learned,
    DWA): one panel per loss, one line per row; the value at step t is the ratio after step t."""
    plt = headless_pyplot()
    weighted = [r for r in rows if len(_weight_names(r)) > 1]
    names = list(dict.fromkeys(n for r in weighted for n in _weight_names(r)))
    panels = len(names) or 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names):
        for r in weighted:
            if name in _weight_names(r):
                ax.plot(
                    [h["step"] for h in r["history"]], [h[f"weight/{name}"] for h in r["history"]], label=r["label"]
                )
        ax.set_title(f"ratio of loss {name}")
        ax.set_xlabel("step")
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
