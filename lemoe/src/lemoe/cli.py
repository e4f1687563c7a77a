"""Command line of `lemoe`: ``edit`` (a lifelong editing experiment), ``eval`` (score a saved
adaptor), ``bench`` (throughput, latency, memory)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from lemoe import __version__
from shared_utils.cli import run_cli

DESCRIPTION = "LEMoE: lifelong model editing with a mixture-of-experts adaptor (Wang & Li, EMNLP 2024)"


def build_parser() -> argparse.ArgumentParser:
    from lemoe.config import DataFormat, ExperimentConfig, NullGate
    from shared_utils.config import add_config_arguments

    parser = argparse.ArgumentParser(prog="lemoe", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command")
    edit = sub.add_parser(
        "edit",
        help="run a lifelong editing experiment (LEMoE + baselines), write results",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # the shipped configs/default.yaml, found inside the package (checkout or installed alike)
    add_config_arguments(edit, ExperimentConfig, "default", package="lemoe")
    ev = sub.add_parser("eval", help="score a saved LEMoE adaptor on edit requests (Rel/Gen/Loc)")
    ev.add_argument("adaptor", help="folder written by save_pretrained / edit --save-adaptor")
    ev.add_argument("--model", default="smollm2-135m-instruct", help="the base model the adaptor was trained on")
    ev.add_argument("--data", default="builtin", help="'builtin', a ZsRE/CounterFact/JSONL file or a hub id")
    ev.add_argument("--data-format", default="auto", choices=get_args(DataFormat))
    ev.add_argument("--limit", type=int, default=100, help="number of requests scored")
    summ = sub.add_parser(
        "summarize", help="each row's metrics as mean and 95%% t-interval over seed folders (rows in all of them)"
    )
    summ.add_argument("folders", nargs="+", help="output folders of `lemoe edit` runs that differ in lemoe.seed")
    summ.add_argument("--output", default=None, help="also write the table here (markdown)")
    summ.add_argument("--readme", default=None, help="README whose results-<name> section takes the table")
    summ.add_argument("--section", default="results-zsre-seeds", help="README section name (default %(default)s)")
    render = sub.add_parser(
        "render", help="rebuild a results folder's table.md and figures from all its row files (no editing)"
    )
    render.add_argument("folder", help="output folder of `lemoe edit`")
    render.add_argument("--readme", default=None, help="README whose section takes the table")
    render.add_argument("--section", default="results", help="README section name (default %(default)s)")
    bench = sub.add_parser("bench", help="editing throughput, inference latency ratio, memory per expert")
    bench.add_argument("--model", default="smollm2-135m-instruct")
    bench.add_argument("--edits", type=int, default=20, help="edits per method (one batch)")
    bench.add_argument("--steps", type=int, default=10, help="training steps per batch for every method")
    bench.add_argument("--experts", type=int, default=5, help="experts added before timing inference")
    defaults = ExperimentConfig().lemoe
    bench.add_argument("--layer", type=int, default=defaults.adaptor.layer, help="adaptor layer (the default config's)")
    bench.add_argument("--repeats", type=int, default=15, help="timed repetitions of the inference pass")
    bench.add_argument(
        "--marks",
        default="1,5,25,50",
        help="batch numbers whose cost is reported (LEMoE and WISE edit up to the largest, --edits per batch)",
    )
    bench.add_argument("--output", default=None, help="also write the numbers to this results JSON (and .md)")
    bench.add_argument("--readme", default=None, help="README whose bench section is regenerated")
    bench.add_argument(
        "--gate",
        default=defaults.router.null_threshold,
        choices=get_args(NullGate),
        help="no-expert path of the timed LEMoE model (router.null_threshold; the default run's is 'activation')",
    )
    return parser


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "edit":
        from lemoe.config import ExperimentConfig
        from lemoe.experiment import run_experiment
        from shared_utils.config import load_config

        cfg = load_config(ExperimentConfig, args.config, rest, package="lemoe")  # checks every option first
        run_experiment(cfg)
        table = Path(cfg.output_dir) / "table.md"
        if table.is_file():
            print(table.read_text())
        else:  # every method stopped at stop_after_batches before its first row
            print(f"no rows yet in {cfg.output_dir}: run the same command again to resume from its checkpoints")
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "summarize":
        from lemoe.experiment import summarize_seeds
        from shared_utils.atomic import atomic_write_text
        from shared_utils.results import check_marked_section, replace_marked_section

        if args.readme:
            check_marked_section(args.readme, args.section)
        table = summarize_seeds(args.folders)
        print(table)
        if args.output:
            atomic_write_text(args.output, table)
        if args.readme:
            replace_marked_section(args.readme, args.section, table)
        return 0
    if args.command == "render":
        from lemoe.experiment import render_folder
        from shared_utils.results import check_marked_section, replace_marked_section

        if args.readme:
            check_marked_section(args.readme, args.section)
        table = render_folder(args.folder)
        print(table)
        if args.readme:
            replace_marked_section(args.readme, args.section, table)
        return 0
    if args.command == "eval":
        from lemoe.experiment import evaluate_saved

        metrics = evaluate_saved(args.adaptor, args.model, args.data, args.data_format, args.limit)
        print(" ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
        return 0
    from lemoe.bench import run_bench
    from shared_utils.results import check_marked_section

    marks = tuple(int(m) for m in args.marks.split(","))
    if args.readme:
        check_marked_section(args.readme, "bench")  # before the minutes of timing, not after
    run_bench(
        args.model,
        args.edits,
        args.steps,
        args.experts,
        args.layer,
        args.repeats,
        args.gate,
        marks,
        args.output,
        args.readme,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``lemoe`` console script: a user error is one line on stderr and exit code 2."""
    return run_cli(_main, "lemoe", argv)


if __name__ == "__main__":
    sys.exit(main())
