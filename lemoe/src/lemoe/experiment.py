"""The lifelong-editing experiment: T sequential edits in batches, every method in one harness.

Protocol (WISE's, which LEMoE follows): the T edits arrive in batches; after the last batch
the *final* model is scored on all T edits (Rel, Gen, Loc). With ``eval_each_batch`` the model
is also scored after each batch on the edits made so far (and Loc on all locality prompts),
which gives the figure of the metrics against the number of edits. ``num_runs`` > 1 repeats on
disjoint slices of the data with the model reset, and averages.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path

from lemoe import checkpoint
from lemoe.baselines import AlphaEditEditor, FTLEditor, GRACEEditor, LoRAEditor, UneditedEditor, WISEEditor
from lemoe.config import METHODS, ExperimentConfig, TrainConfig
from lemoe.data import EditRequest, load_edits, unrelated_text
from lemoe.editor import LEMoEEditor
from lemoe.metrics import (
    EvalSets,
    build_eval_sets,
    evaluate,
    exact_from_teacher_forcing,
    generation_scores,
    mean,
    token_accuracy,
)
from lemoe.planning import embed_requests, plan_batches
from lemoe.probes import with_builtin_probes
from lemoe.training import SequentialEditor
from shared_utils.atomic import atomic_write_text, headless_pyplot, save_figure
from shared_utils.config import config_to_dict, dump_config
from shared_utils.device import build_accelerator
from shared_utils.errors import ConfigError
from shared_utils.results import (
    check_marked_section,
    load_results,
    render_markdown_table,
    replace_marked_section,
    write_results,
)
from shared_utils.seeding import seed_everything
from shared_utils.tracking import get_logger

log = get_logger("lemoe")

GATE_TEXT = {
    "activation": "activation gate (WISE-style)",
    "none": "top-1 always fires",
    "calibrated": "similarity-threshold gate",
    "subject": "subject-string gate (heuristic)",
}
LABELS = {
    "lemoe": "LEMoE (KV anchor, cluster order)",
    **{f"lemoe_gate_{g}": f"same experts, {text}" for g, text in GATE_TEXT.items()},
    "lemoe_subject": "LEMoE, subject-span routing value",
    "lemoe_random": "LEMoE, random order",
    "token_moe": "MoE adaptor, token-level routing",
    "ft_l": "FT-L",
    "lora": "LoRA (peft)",
    "grace": "GRACE (codebook)",
    "wise": "WISE (side memory)",
    "alphaedit": "AlphaEdit (null-space closed form, training-free)",
    "unedited": "Unedited model (trivial baseline)",
}


def load_model(name: str, device, device_map: str = "none"):
    """(model, tokenizer) through shared_utils, on ``device``; ``device_map='auto'`` instead spreads a
    model too large for one GPU over the visible GPUs (transformers' device_map), ignoring ``device``."""
    from shared_utils.models import load_causal_lm

    if device_map == "auto":
        return load_causal_lm(name, device_map="auto")
    return load_causal_lm(name, device=device)


def per_example(
    editor, sets: EvalSets, generation: bool = False, samples: list[dict] | None = None
) -> dict[str, list[float] | float]:
    """Per-example Rel/Gen/Loc token accuracies and Rel/Gen exact matches; with ``generation`` also the
    generation-based scores and fluency (metrics.generation_scores, which fills ``samples``)."""
    out = generation_scores(editor, sets, samples) if generation else {}
    for key, batches in (("rel", sets.rel), ("gen", sets.gen)):
        p, t = editor.predict(batches)
        out[key], out[f"{key}_em"] = token_accuracy(p, t), exact_from_teacher_forcing(p, t)
    p, _ = editor.predict(sets.loc)
    out["loc"] = token_accuracy(p, sets.loc_reference)
    for name, (batches, reference) in sets.probes.items():
        out[name] = token_accuracy(editor.predict(batches)[0], reference)
    return out


def summarise(scores: dict[str, list[float] | float], edited: list[int]) -> dict[str, float]:
    """Average Rel/Gen scores over the ``edited`` examples, Loc scores over all (numbers that are no
    per-example list, the fluency ones, as they are); plus the Rel/Gen/Loc mean."""
    m = {}
    for key, values in scores.items():
        if not isinstance(values, list):
            m[key] = float(values)
        elif key.startswith("loc"):
            m[key] = mean(values)
        else:
            m[key] = mean([values[i] for i in edited])
    m["avg"] = (m["rel"] + m["gen"] + m["loc"]) / 3
    return m


def make_editor(method: str, model, tokenizer, cfg: ExperimentConfig):
    lemoe = cfg.lemoe
    if method in ("lemoe", "lemoe_random"):
        return LEMoEEditor(model, tokenizer, lemoe)
    if method == "lemoe_subject":
        return LEMoEEditor(model, tokenizer, replace(lemoe, router=replace(lemoe.router, pooling="subject")))
    if method == "token_moe":
        return LEMoEEditor(
            model, tokenizer, replace(lemoe, router=replace(lemoe.router, mode="token", null_threshold="none"))
        )
    if method == "ft_l":
        return FTLEditor(model, tokenizer, lemoe.adaptor, lemoe.train, cfg.baselines.ftl_lr, cfg.baselines.ftl_module)
    if method == "lora":
        return LoRAEditor(
            model,
            tokenizer,
            lemoe.adaptor,
            lemoe.train,
            cfg.baselines.lora_lr,
            cfg.baselines.lora_rank,
            cfg.baselines.lora_alpha,
        )
    if method == "grace":
        b = cfg.baselines
        return GRACEEditor(model, tokenizer, lemoe.adaptor, lemoe.train, b.grace_lr, b.grace_eps)
    if method == "wise":
        return WISEEditor(model, tokenizer, lemoe.adaptor, lemoe.train, cfg.baselines.wise)
    if method == "alphaedit":
        return AlphaEditEditor(model, tokenizer, lemoe.adaptor, lemoe.train, cfg.baselines.alphaedit)
    if method == "unedited":
        return UneditedEditor(model, tokenizer, lemoe.adaptor.layer, lemoe.train)
    raise ValueError(f"unknown method {method!r} in methods; expected some of {list(METHODS)}")


def run_method(
    method: str,
    base_model,
    tokenizer,
    batches: list[list[EditRequest]],
    index: dict[int, int],
    sets: EvalSets,
    cfg: ExperimentConfig,
    accelerator,
) -> dict[str, dict] | None:
    """Edit a fresh copy of the model batch by batch; returns {row name: {final, curve, train_s}}.

    Every forward runs under ``accelerator.autocast`` (bf16 on a GPU with ``mixed_precision: auto``);
    each batch's NLL, steps and seconds go to the accelerator's tracker. A checkpoint of this method
    in ``cfg.output_dir`` is resumed from; with ``cfg.stop_after_batches`` the run saves one and
    returns None once it has edited that many batches (lemoe.checkpoint)."""
    seed_everything(cfg.lemoe.seed)
    saved_at = checkpoint.checkpoint_path(cfg.output_dir, method)
    state = checkpoint.load(saved_at, cfg, batches)
    views = {method: None}
    if method == "lemoe" and cfg.gate_views:  # the other no-expert paths on the same experts (training is the same)
        has_subjects = all(r.subject for batch in batches for r in batch)
        for gate in GATE_TEXT:
            if gate != cfg.lemoe.router.null_threshold and (gate != "subject" or has_subjects):
                views[f"lemoe_gate_{gate}"] = gate
    if state is None:
        state = {
            "editor": make_editor(method, copy.deepcopy(base_model), tokenizer, cfg),
            "next_batch": 0,
            "edited": [],  # indices of the requests edited so far
            "train_s": 0.0,
            "curves": {name: [] for name in views},
        }
    else:
        log.info("%s: resuming from %s after %d of %d batches", method, saved_at, state["next_batch"], len(batches))
    editor, curves, edited = state["editor"], state["curves"], state["edited"]
    editor.autocast = accelerator.autocast
    budget, edited_now = cfg.stop_after_batches, 0
    for b in range(state["next_batch"], len(batches)):
        if budget and edited_now == budget:
            break
        batch = batches[b]
        start = time.perf_counter()
        record = editor.edit(batch)
        state["train_s"] += time.perf_counter() - start
        edited.extend(index[id(r)] for r in batch)
        state["next_batch"], edited_now = b + 1, edited_now + 1
        log.info("%s batch %d/%d: %d steps, nll %.4f", method, b + 1, len(batches), record["steps"], record["nll"])
        accelerator.log({f"{method}/{k}": record[k] for k in ("nll", "steps", "sequences", "train_s")})
        if cfg.eval_each_batch and b < len(batches) - 1:
            for name, null in views.items():
                with _null_view(editor, null):
                    curves[name].append({"edits": len(edited), **summarise(per_example(editor, sets), edited)})
    if budget and edited_now == budget:  # also after the last batch: the final scoring is a part of its own
        checkpoint.save(saved_at, state, cfg, batches)
        log.info(
            "%s: stopped after %d batches (stop_after_batches), %d/%d done; checkpoint %s",
            method,
            edited_now,
            state["next_batch"],
            len(batches),
            saved_at,
        )
        return None
    samples: dict[str, list[dict]] = {name: [] for name in views}  # the final model's texts
    for name, null in views.items():
        with _null_view(editor, null):
            scores = per_example(editor, sets, generation=cfg.generation_metrics, samples=samples[name])
            curves[name].append({"edits": len(edited), **summarise(scores, edited)})
    if method == "lemoe" and cfg.save_adaptor:
        editor.save_pretrained(cfg.save_adaptor)
    configured = editor.config.router.null_threshold if isinstance(editor, LEMoEEditor) else None
    return {
        name: {
            "final": curves[name][-1],
            "curve": curves[name],
            "train_s": state["train_s"],
            "history": editor.history,
            "samples": samples[name],
            "gate": views[name] or configured,
        }
        for name in views
    }


class _null_view:
    """Temporarily switch the LEMoE no-expert threshold (None = leave as configured)."""

    def __init__(self, editor, null: str | None):
        self.editor, self.null, self.saved = editor, null, None

    def __enter__(self):
        if self.null is not None:
            self.saved = self.editor.config.router.null_threshold
            self.editor.config.router.null_threshold = self.null

    def __exit__(self, *exc):
        if self.null is not None:
            self.editor.config.router.null_threshold = self.saved


def run_experiment(cfg: ExperimentConfig) -> list[dict]:
    """Run every method of ``cfg.methods`` on ``cfg.num_runs`` slices of T edits; write results.

    Each method's row files are written (with the table and figure so far) as soon as that
    method has finished all its runs, so a run stopped later keeps every finished row. The table
    also holds the rows that earlier parts of the same experiment wrote into ``output_dir`` (same
    config but for the options in ``checkpoint.IGNORED``, e.g. another ``methods`` list); a method
    stopped by ``stop_after_batches`` leaves a checkpoint instead of a row.
    """
    started = time.perf_counter()
    seed_everything(cfg.lemoe.seed)
    if cfg.readme:  # checked now, not after an hour of training
        check_marked_section(cfg.readme, cfg.readme_section, "readme_section")
    data = load_edits(cfg.data, cfg.data_format, limit=cfg.num_edits * cfg.num_runs, skip_invalid=True)
    if len(data) < cfg.num_edits * cfg.num_runs:
        raise ConfigError(
            f"num_edits={cfg.num_edits} x num_runs={cfg.num_runs} needs {cfg.num_edits * cfg.num_runs} "
            f"edits but {cfg.data} has {len(data)} valid ones"
        )
    check_subjects(data, cfg)
    base_model, tokenizer = load_model(cfg.model, "cpu", cfg.device_map)  # a bad name fails before the tracker starts
    accelerator = build_accelerator(
        cfg.accelerator, run_name=Path(cfg.output_dir).name, tracker_config=config_to_dict(cfg)
    )
    if cfg.device_map == "none":
        base_model.to(accelerator.device)
    base_model.eval()
    for p in base_model.parameters():
        p.requires_grad_(False)
    out_dir = Path(cfg.output_dir)

    def prepare() -> list[tuple]:
        return [prepare_run(run, data, base_model, tokenizer, cfg) for run in range(cfg.num_runs)]

    runs = checkpoint.prepared_runs(out_dir, cfg, prepare) if cfg.stop_after_batches else prepare()
    # rows that earlier parts of this experiment wrote (same config but for checkpoint.IGNORED)
    written = [r["method"] for r in _rows(out_dir) if checkpoint.same_experiment(r.get("config"), cfg)]
    stopped: list[str] = []
    for method in cfg.methods:
        order = "random" if method == "lemoe_random" else ("cluster" if method.startswith("lemoe") else "random")
        rows: dict[str, list[dict]] = {}
        for index, sets, plans in runs:
            results = run_method(method, base_model, tokenizer, plans[order], index, sets, cfg, accelerator)
            if results is None:  # stopped at stop_after_batches (num_runs is 1 then)
                stopped.append(method)
                continue
            for name, result in results.items():
                result["order"] = order if method.startswith("lemoe") else "random"
                rows.setdefault(name, []).append(result)
        for name, results in rows.items():
            final = write_row(name, results, cfg, time.perf_counter() - started)
            accelerator.log({f"{name}/final/{k}": v for k, v in final.items()})
            written = [*(n for n in written if n != name), name]
        if rows:
            checkpoint.checkpoint_path(out_dir, method).unlink(missing_ok=True)
            write_summary(out_dir, written, cfg)
    stale = sorted(r["method"] for r in _rows(out_dir) if r["method"] not in written)
    if stale:
        log.warning("%s: row files of another experiment left out of the table and figure: %s", out_dir, stale)
    if stopped:
        log.warning(
            "stopped after %d batches (stop_after_batches): %s; run the same command again to resume",
            cfg.stop_after_batches,
            ", ".join(stopped),
        )
    if cfg.readme and written:
        replace_marked_section(cfg.readme, cfg.readme_section, (out_dir / "table.md").read_text())
    log.info("rows in %s: %s", out_dir, ", ".join(written))
    accelerator.end_training()
    return [config_to_dict(cfg)]


def prepare_run(run: int, data: list[EditRequest], base_model, tokenizer, cfg: ExperimentConfig):
    """(index of each request, eval sets, {order: batches}) of run ``run``'s slice of the data."""
    requests = data[run * cfg.num_edits : (run + 1) * cfg.num_edits]
    if cfg.data == "builtin":
        unedited = SequentialEditor(base_model, tokenizer, cfg.lemoe.adaptor.layer, TrainConfig(progress=False))
        requests = with_builtin_probes(requests, unedited)
    index = {id(r): i for i, r in enumerate(requests)}
    log.info("run %d/%d: %d edits, batches of %d", run + 1, cfg.num_runs, len(requests), cfg.batch_size)
    sets = build_eval_sets(
        base_model,
        tokenizer,
        requests,
        cfg.lemoe.adaptor.layer,
        cfg.eval_batch_size,
        cfg.lemoe.train.cache_prefix,
        unrelated_text(cfg.lemoe.router.null_data, "heldout"),
        cfg.generation_metrics,
    )
    plans = {}
    if cfg.plan.order == "cluster":
        emb = embed_requests(requests, cfg.plan.embedder, base_model, tokenizer)
        plans["cluster"] = plan_batches(
            requests, cfg.batch_size, "cluster", cfg.lemoe.seed + run, emb, cfg.plan.kmeans_iters
        )
    else:
        plans["cluster"] = plan_batches(requests, cfg.batch_size, cfg.plan.order, cfg.lemoe.seed + run)
    plans["random"] = plan_batches(requests, cfg.batch_size, "random", cfg.lemoe.seed + run)
    return index, sets, plans


def check_subjects(data: list[EditRequest], cfg: ExperimentConfig) -> None:
    """Fail before any training when a method needs subjects (see lemoe.subjects) that the data lacks."""
    router = cfg.lemoe.router
    needs = [m for m in cfg.methods if m == "lemoe_subject"]
    if router.pooling == "subject" or router.null_threshold == "subject":
        needs += [m for m in cfg.methods if m in ("lemoe", "lemoe_random")]
    missing = next((i for i, r in enumerate(data) if not r.subject), None)
    if needs and missing is not None:
        raise ConfigError(
            f"methods {needs} need the subject of every edit (router.pooling / router.null_threshold = "
            f"'subject'), but edit {missing} (0-based, among the valid records) of {cfg.data} has none: add a "
            "'subject' field or change methods / lemoe.router"
        )


def _average(results: list[dict]) -> dict:
    keys = results[0]["final"].keys()
    final = {k: mean([r["final"][k] for r in results]) for k in keys}
    curve = [  # the generation-based scores are only in the last point (the final model)
        {k: mean([r["curve"][i][k] for r in results]) for k in results[0]["curve"][i]}
        for i in range(len(results[0]["curve"]))
    ]
    return {
        "final": final,
        "curve": curve,
        "train_s": mean([r["train_s"] for r in results]),
        "samples": [sample for r in results for sample in r["samples"]],  # every run's, in run order
    }


def write_row(name: str, results: list[dict], cfg: ExperimentConfig, wall_s: float) -> dict[str, float]:
    """``<output_dir>/<name>.json``: the row's metrics (averaged over runs) and curve; ``timing``
    holds the wall-clock numbers, which vary between runs (``metrics`` do not, under the seed);
    ``wall_time_s`` is the time from the start of the experiment until this row was written.
    Returns the metrics."""
    avg = _average(results)
    gate = results[0]["gate"]
    label = LABELS[name] + (f"; {GATE_TEXT[gate]}" if name in ("lemoe", "lemoe_subject", "lemoe_random") else "")
    extra = {
        "method": name,
        "label": label,
        "gate": gate,
        "order": results[0]["order"],
        "num_edits": cfg.num_edits,
        "batch_size": cfg.batch_size,
        "num_runs": cfg.num_runs,
        "curve": avg["curve"],
        "steps_per_batch": [h["steps"] for h in results[0]["history"]],
        # the first run's batches: sequences trained (replay included), steps and wall seconds per batch
        "batches": [
            {k: h[k] for k in ("batch", "edits", "sequences", "steps", "train_s")} for h in results[0]["history"]
        ],
        "samples": avg["samples"],
        "timing": {
            "train_s": avg["train_s"],
            # None when nothing trained (the unedited row)
            "edits_per_s": cfg.num_edits / avg["train_s"] if any(h["steps"] for h in results[0]["history"]) else None,
        },
    }
    write_results(Path(cfg.output_dir) / f"{name}.json", avg["final"], config=cfg, wall_time_s=wall_s, extra=extra)
    return avg["final"]


def render_folder(out_dir: str | Path) -> str:
    """``table.md``, ``metrics_vs_edits.png`` and ``batch_cost.png`` of every row file in ``out_dir`` (``lemoe
    render``: e.g. after a part of another config's options was added by hand); returns the table."""
    out_dir = Path(out_dir)
    if not _rows(out_dir):
        raise ConfigError(f"{out_dir} holds no row files of `lemoe edit`")
    plot_curves(out_dir)
    plot_batch_cost(out_dir)
    return render_table(out_dir)


def write_summary(out_dir: Path, methods: list[str], cfg: ExperimentConfig) -> None:
    """``table.md``, ``metrics_vs_edits.png``, ``batch_cost.png`` and ``config.yaml`` for the rows
    ``methods`` written so far."""
    dump_config(cfg, out_dir / "config.yaml")
    render_table(out_dir, methods)
    plot_curves(out_dir, methods)
    plot_batch_cost(out_dir, methods)


ROW_ORDER = list(LABELS)


def _rows(out_dir: Path, methods: list[str] | None = None) -> list[dict]:
    """Row JSONs in ``out_dir`` (only ``methods`` when given), in table order."""
    results = [r for r in load_results(out_dir) if r.get("method") in LABELS]
    if methods is not None:
        results = [r for r in results if r["method"] in methods]
    return sorted(results, key=lambda r: ROW_ORDER.index(r["method"]))


def render_table(out_dir: Path, methods: list[str] | None = None) -> str:
    """Markdown table of the row JSONs in ``out_dir`` (``methods``: only these rows), written to ``table.md``."""
    results = _rows(out_dir, methods)
    columns = {
        "label": "Method",
        "metrics.rel": "Rel",
        "metrics.gen": "Gen",
        "metrics.loc": "Loc",
        "metrics.loc_nbhd": "Loc nbhd",
        "metrics.loc_same": "Loc same-subj",
        "metrics.avg": "Avg",
        "metrics.rel_gen_f1": "Rel F1 (greedy)",
        "metrics.gen_gen_f1": "Gen F1 (greedy)",
        "metrics.loc_gen_f1": "Loc F1 (greedy)",
        "metrics.rel_gen_em": "Rel EM (greedy)",
        "metrics.gen_gen_em": "Gen EM (greedy)",
        "metrics.repetition": "repetition",
        "metrics.repetition_phrase": "phrase rep.",
        "metrics.ppl_ratio": "ppl / unedited",
        "timing.edits_per_s": "edits/s",
    }
    table = render_markdown_table(
        results,
        columns,
        digits=3,
        bold_best={
            "metrics.rel": "max",
            "metrics.gen": "max",
            "metrics.loc": "max",
            "metrics.avg": "max",
            "metrics.loc_nbhd": "max",
            "metrics.loc_same": "max",
        },
    )
    if results:
        extra = results[0]
        note = (
            f"\n\nT = {extra['num_edits']} sequential edits in batches of {extra['batch_size']}, "
            f"metrics on the final model, averaged over {extra['num_runs']} run(s); model "
            f"`{results[0]['config']['model']}`, data `{results[0]['config']['data']}`, "
            f"device {results[0].get('device', '?')}. Rel/Gen/Loc: teacher-forced token accuracy; Loc is the "
            "data set's own locality probe, Loc nbhd the same relation for another subject, Loc same-subj the "
            "same subject under another relation (lemoe.probes; blank: the data has none); (greedy): the "
            "greedy answer's token F1 / exact match against the target (Loc: against the unedited model's greedy "
            "answer); repetition: share of 24-token greedy continuations of the edit prompts with a non-blank "
            "token three times in a row (whitespace tokens skipped)"
            + (
                f" (unedited model: {extra['metrics']['repetition_unedited']:.3f})"
                if "repetition_unedited" in extra["metrics"]
                else ""
            )
            + "; phrase rep.: the same with a run of up to 8 tokens repeated three times back to back"
            + (
                f" (unedited model: {extra['metrics']['repetition_phrase_unedited']:.3f})"
                if "repetition_phrase_unedited" in extra["metrics"]
                else ""
            )
            + "; ppl / unedited: perplexity on the held-out unrelated text over the unedited model's"
            + (f" ({extra['metrics']['ppl_unedited']:.2f})" if "ppl_unedited" in extra["metrics"] else "")
            + ".\n"
        )
        table += note
    atomic_write_text(out_dir / "table.md", table)
    return table


SEED_METRICS = {
    "rel": "Rel",
    "gen": "Gen",
    "loc": "Loc",
    "avg": "Avg",
    "rel_gen_f1": "Rel F1 (greedy)",
    "gen_gen_f1": "Gen F1 (greedy)",
    "repetition": "repetition",
    "repetition_phrase": "phrase rep.",
    "ppl_ratio": "ppl / unedited",
}


def summarize_seeds(folders: list[str | Path]) -> str:
    """Markdown table: for every row present in all ``folders`` (runs that differ in ``lemoe.seed``,
    i.e. edit order and initialisation), each metric's mean ± the half-width of its 95% Student-t
    interval over the folders, and the seeds used. Rows of a folder missing elsewhere are named."""
    from shared_utils.errors import ConfigError
    from shared_utils.intervals import mean_interval

    per_folder = [{r["method"]: r for r in _rows(Path(f))} for f in folders]
    if any(not rows for rows in per_folder):
        empty = [str(f) for f, rows in zip(folders, per_folder, strict=True) if not rows]
        raise ConfigError(f"no row files of `lemoe edit` in {', '.join(empty)}")
    common = [m for m in ROW_ORDER if all(m in rows for rows in per_folder)]
    left_out = sorted({m for rows in per_folder for m in rows} - set(common))
    lines = [
        "| Method | seeds | " + " | ".join(SEED_METRICS.values()) + " |",
        "| --- | --- | " + " | ".join("---" for _ in SEED_METRICS) + " |",
    ]
    for method in common:
        rows = [r[method] for r in per_folder]
        cells = []
        for key in SEED_METRICS:
            values = [r["metrics"][key] for r in rows if key in r["metrics"]]
            if len(values) < len(rows):
                cells.append("–")
                continue
            mean, half = mean_interval(values)
            cells.append(f"{mean:.3f}" if half is None else f"{mean:.3f} ± {half:.3f}")
        seeds = ", ".join(str(r["config"]["lemoe"]["seed"]) for r in rows)
        lines.append(f"| {rows[0]['label']} | {seeds} | " + " | ".join(cells) + " |")
    note = (
        f"\n\nMean ± half-width of the 95% Student-t interval over {len(folders)} runs that differ in "
        "`lemoe.seed` (expert initialisation, edit order of the cluster planner, replay sample), from "
        + ", ".join(f"`{f}`" for f in folders)
        + "."
        + (f" Rows not in every folder, left out: {', '.join(left_out)}." if left_out else "")
        + "\n"
    )
    return "\n".join(lines) + note


def plot_curves(out_dir: Path, methods: list[str] | None = None) -> Path:
    """Rel, Gen, Loc and their average against the number of edits, one line per method."""
    plt = headless_pyplot()

    results = _rows(out_dir, methods)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), sharex=True)
    for ax, key in zip(axes, ("rel", "gen", "loc", "avg"), strict=True):
        for r in results:
            curve = r["curve"]
            main = r["method"] == "lemoe"  # drawn on top: the gate rows share its Rel curve
            ax.plot(
                [c["edits"] for c in curve],
                [c[key] for c in curve],
                marker="o",
                label=r["method"],
                linewidth=2.5 if main else 1.2,
                zorder=3 if main else 2,
            )
        ax.set_title(key.capitalize() if key != "avg" else "Avg")
        ax.set_xlabel("edits made")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir / "metrics_vs_edits.png", dpi=110)


def plot_batch_cost(out_dir: Path, methods: list[str] | None = None) -> Path:
    """Per-batch training cost against the number of batches edited so far (for LEMoE, one expert per
    batch up to ``max_experts``): wall seconds, and sequences x steps, which does not depend on the
    machine. A flat line is a cost that does not grow with the earlier edits (issue 11 item 4)."""
    plt = headless_pyplot()
    from matplotlib.ticker import MaxNLocator

    results = [r for r in _rows(out_dir, methods) if r.get("batches")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for r in results:
        if r["method"].startswith("lemoe_gate_"):
            continue  # the gate rows share the LEMoE row's training
        x = [b["batch"] for b in r["batches"]]
        axes[0].plot(x, [b["train_s"] for b in r["batches"]], marker="o", label=r["method"])
        axes[1].plot(x, [b["sequences"] * b["steps"] for b in r["batches"]], marker="o", label=r["method"])
    axes[0].set_ylabel("wall seconds per batch")
    axes[1].set_ylabel("sequences x steps per batch")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("edit batches so far (LEMoE: experts, up to max_experts)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir / "batch_cost.png", dpi=110)


def evaluate_saved(
    adaptor_dir: str, model_name: str, data: str, data_format: str = "auto", limit: int = 100, batch_size: int = 32
) -> dict[str, float]:
    """Rel/Gen/Loc of a saved LEMoE adaptor (``lemoe eval``): the first ``limit`` requests of ``data``."""
    requests = load_edits(data, data_format, limit=limit, skip_invalid=True)
    model, tokenizer = load_model(model_name, "cpu")
    for p in model.parameters():
        p.requires_grad_(False)
    editor = LEMoEEditor.from_pretrained(model, adaptor_dir, tokenizer)
    with editor.detached():
        sets = build_eval_sets(model, tokenizer, requests, editor.layer, batch_size)
    return evaluate(editor, sets)
