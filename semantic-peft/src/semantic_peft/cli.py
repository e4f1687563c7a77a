"""Command line of `semantic-peft`: analyze, train, eval, bench, reproduce, interference.

Every sub-command takes ``--config`` (a YAML file, or the name of a config shipped in the
package: ``default``, ``tiny``, ``paper/llama2_7b_lora``...) and any config option as
``--key value`` (e.g. ``--peft.method ia3 --train.epochs 5 --reweight.enabled true``).
Mistakes in options, data files, records or model names end the command with one line on
stderr and exit code 2 (:func:`shared_utils.cli.run_cli`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from semantic_peft import __version__
from shared_utils.cli import run_cli

PACKAGE = "semantic_peft"
DEFAULT_CONFIG = "default"
DEFAULT_ROWS = "reproduce"
DEFAULT_RESULTS = "runs/semantic-peft/reproduce"
DESCRIPTION = "Semantic are Beacons: semantic analysis of PEFT knowledge learning (Wang & Li, Findings of ACL 2024)"


def build_parser() -> argparse.ArgumentParser:
    from semantic_peft.config import ExperimentConfig
    from shared_utils.config import add_config_arguments

    parser = argparse.ArgumentParser(prog="semantic-peft", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    helps = {
        "analyze": "measure semantic distances (base, and an adapter if given), interference, filtering; figures",
        "train": "train on the facts with the configured method/remedies; write results and the adapter",
        "eval": "token accuracy / exact match on prompts, paraphrases and unrelated prompts",
        "bench": "step time of re-weighted vs plain LoRA and the cost of the filtering pass",
        "reproduce": "run the table (LoRA and its remedies, full FT, IA3, prompt, prefix tuning) into --results",
        "interference": "exact match vs the number of facts learned jointly, core facts' features alone vs jointly",
    }
    commands = {}
    for name, text in helps.items():
        commands[name] = sub.add_parser(name, help=text, description=text)
        add_config_arguments(commands[name], ExperimentConfig, DEFAULT_CONFIG, package=PACKAGE)
    for name in ("analyze", "eval"):
        commands[name].add_argument("--adapter", help="a saved peft adapter folder (or a full model folder for eval)")
        commands[name].add_argument("--out", help="write the JSON here (default: <output_dir>/<command>.json)")
    commands["bench"].add_argument("--steps", type=int, default=6, help="timed steps per variant")
    reproduce = commands["reproduce"]
    reproduce.add_argument(
        "--rows",
        default=DEFAULT_ROWS,
        help="YAML with the base config and the rows: a file or a shipped name (reproduce; paper/reproduce: 7B scale)",
    )
    reproduce.add_argument("--results", default=DEFAULT_RESULTS, help="results folder (default: %(default)s)")
    reproduce.add_argument("--only", nargs="*", help="run only these row names")
    reproduce.add_argument(
        "--part",
        help="run only the rows of this named part of the rows file (reproduce: core = LoRA and its remedies, "
        "methods = full FT, IA3, prompt and prefix tuning)",
    )
    reproduce.add_argument(
        "--table-only", action="store_true", help="only regenerate table.md and the README table from the results JSON"
    )
    reproduce.add_argument(
        "--readme", default=None, help="also regenerate the results table of this README (default: none)"
    )
    reproduce.add_argument(
        "--readme-section",
        default="results",
        help="README markers to fill: results (+ claims), the built-in table; another NAME fills "
        "<!-- NAME:start/end --> and <!-- NAME-claims:start/end --> (e.g. zsre, counterfact)",
    )
    curve = commands["interference"]
    curve.add_argument(
        "--sizes", type=int, nargs="+", default=[1, 5, 10, 25, 50, 100, 200], help="facts learned jointly"
    )
    curve.add_argument("--core", type=int, default=5, help="facts in every set, also learned alone (default: 5)")
    curve.add_argument(
        "--results", default="runs/semantic-peft/interference", help="writes seed_<seed>.json, curve.md, curve.png"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_main, "semantic-peft", argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from semantic_peft.config import ExperimentConfig
    from shared_utils.config import load_config

    if args.command == "reproduce":
        from semantic_peft.reproduce import part_rows, reproduce, write_table
        from shared_utils.errors import ConfigError

        if args.config != DEFAULT_CONFIG:
            raise ConfigError("reproduce takes its base config from the rows file (--rows), not --config")
        if args.part is not None:
            if args.only:
                raise ConfigError("give --part or --only, not both")
            args.only = part_rows(args.rows, args.part)

        if args.table_only:
            write_table(args.results, args.readme, args.readme_section)
        else:
            reproduce(args.rows, args.results, rest, args.readme, args.only, args.readme_section)
        return 0
    config = load_config(ExperimentConfig, args.config, rest, package=PACKAGE)
    if args.command == "train":
        return _train(config)
    if args.command == "eval":
        return _eval(config, args.adapter, args.out)
    if args.command == "analyze":
        from semantic_peft.analysis import analyze

        report = analyze(config, args.adapter)
        _write(report, args.out or Path(config.output_dir) / "analysis" / "analysis.json")
        return 0
    if args.command == "interference":
        from semantic_peft.interference import run_and_write

        print(f"written to {run_and_write(config, args.sizes, args.core, args.results)}")
        return 0
    if args.command == "bench":
        from semantic_peft.bench import run_bench

        print(json.dumps(run_bench(config, args.steps), indent=2))
        return 0
    raise AssertionError(args.command)


def _write(data: dict, path: str | Path) -> None:
    from shared_utils.results import atomic_write_json

    atomic_write_json(path, data)
    print(json.dumps(data.get("metrics", data), indent=2))
    print(f"written to {path}")


def _train(config) -> int:
    from semantic_peft.experiment import run_experiment
    from shared_utils.results import write_results

    result = run_experiment(config)
    path = Path(config.output_dir) / config.name / "results.json"
    extra = {"train_time_s": result["train_time_s"], "details": result["details"]}
    write_results(path, result["metrics"], config, wall_time_s=result["wall_time_s"], extra=extra)
    print(json.dumps(result["metrics"], indent=2))
    print(f"written to {path}")
    return 0


def _eval(config, adapter: str | None, out: str | None) -> int:
    from semantic_peft.adapters import load_adapter
    from semantic_peft.evaluation import base_reference, evaluate
    from semantic_peft.experiment import facts_for, load_model

    facts = facts_for(config)
    model, tokenizer = load_model(config.model)
    reference = base_reference(model, tokenizer, facts, config.eval.locality_tokens, config.eval.batch_size)
    if adapter is not None:
        if (Path(adapter) / "adapter_config.json").is_file():
            model = load_adapter(model, adapter)
        else:
            model, _ = load_model(adapter)
    result = evaluate(
        model,
        tokenizer,
        facts,
        reference,
        config.data.max_paraphrases,
        config.eval.batch_size,
    )
    per_fact = {"fact": [f.fact_id for f in facts], **{k: v.tolist() for k, v in result["per_fact"].items()}}
    _write(
        {
            "metrics": result["metrics"],
            "model": config.model,
            "adapter": adapter,
            "facts": len(facts),
            "per_fact": per_fact,
        },
        out or Path(config.output_dir) / "eval.json",
    )
    return 0
