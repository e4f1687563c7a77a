"""Command line of `semantic-peft`: analyze, train, eval, bench, reproduce.

Every sub-command takes ``--config file.yaml`` and any config option as ``--key value``
(e.g. ``--peft.method ia3 --train.epochs 5 --reweight.enabled true``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from semantic_peft import __version__

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = PACKAGE_ROOT / "configs" / "default.yaml"
DESCRIPTION = "Semantic are Beacons: semantic analysis of PEFT knowledge learning (Wang & Li, Findings of ACL 2024)"


def _default_config() -> str | None:
    return str(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else None


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
        "reproduce": "run the default table (LoRA, +filter, +reweight, +both, full FT) into results/",
    }
    commands = {}
    for name, text in helps.items():
        commands[name] = sub.add_parser(name, help=text, description=text)
        add_config_arguments(commands[name], ExperimentConfig, _default_config())
    for name in ("analyze", "eval"):
        commands[name].add_argument("--adapter", help="a saved peft adapter folder (or a full model folder for eval)")
        commands[name].add_argument("--out", help="write the JSON here (default: <output_dir>/<command>.json)")
    commands["bench"].add_argument("--steps", type=int, default=6, help="timed steps per variant")
    reproduce = commands["reproduce"]
    reproduce.add_argument(
        "--rows",
        default=str(PACKAGE_ROOT / "configs" / "reproduce.yaml"),
        help="YAML with the base config and the rows (configs/paper/reproduce.yaml: 7B scale)",
    )
    reproduce.add_argument("--results", default="results/semantic-peft", help="results folder")
    reproduce.add_argument("--only", nargs="*", help="run only these row names")
    reproduce.add_argument(
        "--table-only", action="store_true", help="only regenerate table.md and the README table from the results JSON"
    )
    reproduce.add_argument("--readme", default=str(PACKAGE_ROOT / "README.md"), help="README whose table to regenerate")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from semantic_peft.config import ExperimentConfig
    from shared_utils.config import ConfigError, load_config

    if args.command == "reproduce":
        from semantic_peft.reproduce import reproduce, write_table

        if args.table_only:
            write_table(args.results, args.readme)
        else:
            reproduce(args.rows, args.results, rest, args.readme, args.only)
        return 0
    try:
        config = load_config(ExperimentConfig, args.config, rest)
    except ConfigError as err:
        parser.error(str(err))
    if args.command == "train":
        return _train(config)
    if args.command == "eval":
        return _eval(config, args.adapter, args.out)
    if args.command == "analyze":
        from semantic_peft.analysis import analyze

        report = analyze(config, args.adapter)
        _write(report, args.out or Path(config.output_dir) / "analysis" / "analysis.json")
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
    write_results(
        path, result["metrics"], config, wall_time_s=result["wall_time_s"], extra={"details": result["details"]}
    )
    print(json.dumps(result["metrics"], indent=2))
    print(f"written to {path}")
    return 0


def _eval(config, adapter: str | None, out: str | None) -> int:
    from semantic_peft.adapters import load_adapter
    from semantic_peft.evaluation import base_reference, evaluate
    from semantic_peft.experiment import facts_for, load_model

    model, tokenizer = load_model(config.model)
    facts = facts_for(config)
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
        config.eval.locality_tokens,
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
