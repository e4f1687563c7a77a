"""Command line of `distill-hetero`: ``train``, ``eval``, ``reproduce``, ``render``, ``summarize``, ``bench``.

Every sub-command takes ``--config file.yaml`` and any config option as ``--key value``
(``--loss.intermediate cosine``); ``python -m distill_hetero`` and ``accelerate launch -m distill_hetero.cli``
behave the same.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from distill_hetero import __version__
from distill_hetero.config import PACKAGE, RunConfig
from shared_utils.cli import run_cli
from shared_utils.config import add_config_arguments, load_config
from shared_utils.device import apply_threads

PROG = "distill-hetero"
DEFAULT_RESULTS = "runs/distill-hetero/results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Heterogeneous teacher-student LLM distillation with intermediate-layer alignment (Zhai, Wang & Li, "
            "CCL 2024)"
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    train = sub.add_parser("train", help="distil the teacher into a student; export it with save_pretrained")
    add_config_arguments(train, RunConfig, "default", package=PACKAGE)
    train.add_argument("--results", default=None, help="also evaluate and write the results JSON here")
    ev = sub.add_parser("eval", help="ROUGE-L of a saved student (or the teacher) on the eval sets")
    add_config_arguments(ev, RunConfig, "default", package=PACKAGE)
    ev.add_argument("--model", required=True, help="exported student folder, embedded alias or hub id")
    ev.add_argument("--results", default=None, help="write the results JSON here")
    rep = sub.add_parser("reproduce", help="the default reproduction (every row) into a results folder")
    add_config_arguments(rep, RunConfig, "default", package=PACKAGE)
    rep.add_argument("--results", default=DEFAULT_RESULTS, help="results folder (one JSON per row, table, plot)")
    rep.add_argument("--rows", default=None, help="comma-separated rows (default: all; an unknown one lists them)")
    rep.add_argument("--readme", default=None, help="README whose results section is regenerated")
    rep.add_argument("--no-teacher", action="store_true", help="skip the teacher reference row")
    rep.add_argument("--reference", default=None, help="results folder whose KD row this part's rows are compared to")
    rep.add_argument("--section", default="results", help="README marker section the table is written to")
    rep.add_argument("--skip-done", action="store_true", help="keep rows this commit already wrote; run the rest")
    ren = sub.add_parser("render", help="tables and figures of a results folder (no training), e.g. after parts")
    ren.add_argument("results", help="results folder")
    ren.add_argument("--reference", default=None, help="results folder whose KD row these rows are compared to")
    ren.add_argument("--readme", default=None, help="README whose section is regenerated")
    ren.add_argument("--section", default="results", help="README marker section")
    summ = sub.add_parser("summarize", help="key metrics of each row over several seed folders (mean and values)")
    summ.add_argument("folders", nargs="+", help="results folders of runs with different seeds")
    summ.add_argument("--output", default=None, help="write the markdown table here")
    summ.add_argument("--readme", default=None, help="README whose results-seeds section is regenerated")
    bench = sub.add_parser("bench", help="tokens/s, step-time ratio and peak memory of SFT, KD, KD+intermediate")
    add_config_arguments(bench, RunConfig, "default", package=PACKAGE)
    bench.add_argument("--steps", type=int, default=4, help="timed steps per mode and round (after a warm-up step)")
    bench.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every mode (CPU-time ratio)")
    bench.add_argument("--output", default=None, help="also write the numbers as JSON (and .md) here")
    bench.add_argument("--readme", default=None, help="README whose bench section is regenerated")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The console script: user errors (config, data, model name) become one line and exit code 2."""
    return run_cli(_main, PROG, argv)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "render":
        from distill_hetero.experiment import render_outputs

        print(render_outputs(args.results, args.readme, args.reference, args.section))
        return 0
    if args.command == "summarize":
        return _summarize(args.folders, args.output, args.readme)
    if args.command == "reproduce":
        from distill_hetero.experiment import reproduce

        reproduce(
            args.config,
            rest,
            args.results,
            [r for r in args.rows.split(",") if r] if args.rows else None,
            args.readme,
            with_teacher=not args.no_teacher,
            reference=args.reference,
            section=args.section,
            skip_done=args.skip_done,
        )
        return 0
    cfg = load_config(RunConfig, args.config, rest, package=PACKAGE)
    apply_threads(cfg.num_threads)
    if args.command == "train":
        return _train(cfg, args.results)
    if args.command == "eval":
        return _eval(cfg, args.model, args.results)
    from distill_hetero.bench import run_bench

    run_bench(cfg, args.steps, args.output, args.readme, args.rounds)
    return 0


def _summarize(folders: list[str], output: str | None, readme: str | None) -> int:
    from distill_hetero.experiment import summarize_seeds
    from shared_utils.results import atomic_write_text, replace_marked_section

    table = summarize_seeds(folders)
    print(table)
    if output:
        atomic_write_text(output, table)
    if readme:
        replace_marked_section(readme, "results-seeds", table)
    return 0


def _train(cfg: RunConfig, results: str | None) -> int:
    from distill_hetero.experiment import (
        build_teacher_cache,
        eval_sets,
        fit_sets,
        student_metrics,
        tokenize_records,
        training_examples,
        training_records,
    )
    from distill_hetero.models import load_teacher
    from distill_hetero.trainer import export_student, train
    from shared_utils.config import dump_config
    from shared_utils.results import write_results

    start = time.time()
    teacher, tokenizer = load_teacher(cfg.teacher, cfg.train.teacher_dtype)
    teacher_tokenizer = tokenizer
    train_records, held = training_records(cfg, teacher, tokenizer)
    sets = eval_sets(cfg, held, tokenizer) if results else {}  # before training: a missing set fails early
    examples = tokenize_records(cfg, tokenizer, train_records)
    cache = build_teacher_cache(cfg, [cfg], teacher, tokenizer, examples)  # train.teacher_cache_top_k, as reproduce
    if cfg.student.tokenizer:  # cross-tokenizer: the student trains on its own tokenisation of the same texts
        examples, cross = training_examples(cfg, tokenizer, train_records)
        tokenizer = cross.student_tokenizer
        sets = fit_sets(sets, tokenizer, cfg.data.max_prompt_tokens)
    else:
        cross = None
    result = train(cfg, teacher, teacher_tokenizer, examples, teacher_cache=cache, cross=cross)
    path = export_student(result, tokenizer, Path(cfg.output_dir) / "student")
    if result.accelerator.is_main_process:
        dump_config(cfg, Path(cfg.output_dir) / "config.yaml")
        print(f"student saved to {path}")
        if results:
            metrics, per_example = student_metrics(result, tokenizer, sets, cfg)
            write_results(
                results,
                metrics,
                cfg,
                wall_time_s=time.time() - start,
                extra={
                    "row": cfg.name,
                    "history": result.history,
                    "mapping": result.mapping,
                    "examples": per_example,
                },
            )
            print(metrics)
    result.accelerator.end_training()
    return 0


def _eval(cfg: RunConfig, model_name: str, results: str | None) -> int:
    from distill_hetero.experiment import eval_sets, evaluate, training_records
    from distill_hetero.models import load_teacher
    from shared_utils.models import load_causal_lm
    from shared_utils.results import write_results

    start = time.time()
    teacher, tokenizer = load_teacher(cfg.teacher, cfg.train.teacher_dtype)
    held = training_records(cfg, teacher, tokenizer)[1] if "builtin" in cfg.eval.datasets else []
    model, _ = load_causal_lm(model_name)
    metrics, per_example = evaluate(model, tokenizer, eval_sets(cfg, held, tokenizer), cfg)
    print(metrics)
    if results:
        write_results(
            results,
            metrics,
            cfg,
            wall_time_s=time.time() - start,
            extra={"row": model_name, "examples": per_example},
        )
    return 0
