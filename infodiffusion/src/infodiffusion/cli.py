"""Command line of `infodiffusion`: train, sample, eval, bench, reproduce, settle.

Every sub-command takes ``--config FILE_OR_NAME`` (default: the shipped ``default``; also
``tiny``, ``paper/qqp``, ...) and ``--section.key value`` overrides (see
``infodiffusion train --help`` for the list). A bad option, data file or model name is
reported in one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infodiffusion import __version__
from infodiffusion.config import InfoDiffusionConfig
from infodiffusion.reproduce import SEEDS
from shared_utils.cli import run_cli

PACKAGE = "infodiffusion"


def build_parser() -> argparse.ArgumentParser:
    from shared_utils.config import add_config_arguments

    parser = argparse.ArgumentParser(
        prog="infodiffusion",
        description="InfoDiffusion: information-entropy-aware text diffusion (Wang, Li & Li, Findings of EMNLP 2023)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    commands = {
        "train": "train a model (accelerate launch works too)",
        "sample": "generate candidates for the evaluation split with a trained run",
        "eval": "score a samples.jsonl (six metrics with MBR)",
        "bench": "training steps/s, sampling samples/s and reverse steps to 95 percent of the final BLEU: "
        "info vs sqrt schedule",
        "reproduce": "the five rows x seeds of the default reproduction (runs in --runs, results JSON in --results)",
        "context": "context rows on the evaluation records: copy-the-source and a causal LM fine-tuned with LoRA "
        "on the training pairs, greedy decoding (JSON per row in --output-dir, table into --readme)",
        "settle": "keyinfo-first check: the reverse step at which each target word's token settles, by its "
        "information score, for trained runs (settling.json/.png/.md in --output); DDPM over all T steps "
        "unless --sample.method is given",
    }
    for name, help_text in commands.items():
        p = sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        add_config_arguments(p, InfoDiffusionConfig, "default", package=PACKAGE)
        if name in ("sample", "eval"):
            p.add_argument("--run", help="trained run folder (default: output_dir)")
            p.add_argument("--samples", help="samples.jsonl to write/read (default: <run>/samples.jsonl)")
        if name == "eval":
            p.add_argument("--metrics-out", help="metrics JSON to write (default: <run>/metrics.json)")
        if name == "reproduce":
            p.add_argument("--runs", help="where the rows' runs go (default: output_dir)")
            p.add_argument("--results", help="results folder (default: <runs>/results)")
            p.add_argument("--readme", help="README whose results table to regenerate (default: none)")
            p.add_argument("--rows", default="", help="comma-separated subset of rows")
            p.add_argument(
                "--seeds",
                default=",".join(map(str, SEEDS)),
                help="comma-separated seeds to run (a (row, seed) already in --results with the same settings is "
                "skipped); all parts in --results are then aggregated",
            )
            p.add_argument("--aggregate-only", action="store_true", help="only aggregate the parts in --results")
            p.add_argument(
                "--reuse-runs",
                action="store_true",
                help="re-sample/re-score runs already trained with the same training settings",
            )
        if name == "settle":
            p.add_argument("runs", nargs="+", help="trained run folders (each traced with its saved config.yaml)")
            p.add_argument("--output", required=True, help="folder for settling.json, settling.png, settling.md")
            p.add_argument("--sources", type=int, default=40, help="trace the first N sources of data.eval_split")
            p.add_argument("--bins", type=int, default=4, help="quantile bins of the information score")
            p.add_argument("--readme", default=None, help="README whose keyinfo-first section takes the table")
        if name == "context":
            from infodiffusion.autoregressive import LoraBaselineConfig

            p.add_argument("--output-dir", required=True, help="folder for copy_source.json / autoregressive.json")
            p.add_argument("--rows", default="copy,lora", help="comma-separated subset of copy,lora")
            p.add_argument("--readme", default=None, help="README whose qqp-context section takes the table")
            for field, value in vars(LoraBaselineConfig()).items():
                p.add_argument(
                    f"--ar-{field.replace('_', '-')}", type=type(value), default=value, help=f"LoRA row {field}"
                )
        if name == "bench":
            p.add_argument("--bench-steps", type=int, default=30, help="timed training steps per schedule")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_cli(_main, PACKAGE, argv)


def _main(argv: list[str] | None) -> int:
    from shared_utils.config import load_config

    parser = build_parser()
    args, overrides = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    cfg = load_config(InfoDiffusionConfig, args.config, overrides, package=PACKAGE)
    argv_list = list(argv) if argv is not None else sys.argv[1:]
    config_given = any(a == "--config" or a.startswith("--config=") for a in argv_list)
    run = None
    if args.command in ("sample", "eval"):  # the run's saved config; conflicting options are refused
        from infodiffusion.run import run_config

        run = args.run or cfg.output_dir
        cfg = run_config(run, cfg, overrides, config_given=config_given)
    if args.command == "train":
        from infodiffusion.trainer import train

        summary = train(cfg)
        print(json.dumps({k: v for k, v in summary.items() if k != "loss_history"}))
    elif args.command == "sample":
        from accelerate import PartialState

        from infodiffusion.evaluate import sample_run, write_samples

        records = sample_run(cfg, run)
        if PartialState().is_main_process:  # already initialised by sample_run
            out = args.samples or str(Path(run) / "samples.jsonl")
            write_samples(records, out)
            print(f"wrote {len(records)} candidates to {out}")
    elif args.command == "eval":
        from infodiffusion.evaluate import read_samples, score_records
        from shared_utils.results import write_results

        path = Path(args.samples or Path(run) / "samples.jsonl")
        records = read_samples(path)
        metrics = score_records(records, cfg)
        write_results(args.metrics_out or Path(run) / "metrics.json", metrics, config=cfg, extra={"samples": str(path)})
        print(json.dumps(metrics, indent=2))
    elif args.command == "bench":
        from infodiffusion.bench import run_bench

        run_bench(cfg, args.bench_steps)
    elif args.command == "reproduce":
        from infodiffusion.reproduce import reproduce

        rows = [r for r in args.rows.split(",") if r] or None
        seeds = () if args.aggregate_only else _seeds(args.seeds)
        runs = Path(args.runs or cfg.output_dir)
        results = Path(args.results) if args.results else runs / "results"
        readme = Path(args.readme) if args.readme else None
        print(reproduce(cfg, results, runs, readme, rows, args.reuse_runs, seeds))
    elif args.command == "context":
        _context(cfg, args)
    elif args.command == "settle":
        from infodiffusion.run import run_config
        from infodiffusion.settling import settle
        from shared_utils.config import parse_overrides
        from shared_utils.results import check_marked_section

        configs = [(run, run_config(run, cfg, overrides, config_given=config_given)) for run in args.runs]
        if "sample.method" not in parse_overrides(overrides):
            for _, run_cfg in configs:
                run_cfg.sample.method = "ddpm"
        readme = Path(args.readme) if args.readme else None
        if readme is not None:
            check_marked_section(readme, "keyinfo-first")  # before the tracing, not after
        print(settle(configs, Path(args.output), args.sources, args.bins, readme))
    return 0


def _context(cfg: InfoDiffusionConfig, args: argparse.Namespace) -> None:
    from dataclasses import fields

    from infodiffusion.autoregressive import LoraBaselineConfig, copy_source_row, lora_row, render_context_table
    from shared_utils.errors import ConfigError
    from shared_utils.results import check_marked_section, replace_marked_section

    rows = [r for r in args.rows.split(",") if r]
    if not rows or set(rows) - {"copy", "lora"}:
        raise ConfigError(f"--rows: expected a comma-separated subset of copy,lora, got {args.rows!r}")
    if args.readme:
        check_marked_section(args.readme, "qqp-context")
    out = Path(args.output_dir)
    lora = LoraBaselineConfig(**{f.name: getattr(args, f"ar_{f.name}") for f in fields(LoraBaselineConfig)})
    if "copy" in rows:
        print(json.dumps(copy_source_row(cfg, out / "copy_source.json")["metrics"]))
    if "lora" in rows:
        print(json.dumps(lora_row(cfg, lora, out / "autoregressive.json")["metrics"]))
    if args.readme:
        replace_marked_section(args.readme, "qqp-context", render_context_table(out))


def _seeds(text: str) -> tuple[int, ...]:
    from shared_utils.errors import ConfigError

    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct comma-separated integers, got {text!r}")
    return seeds
