"""Command line of `distill-hetero`."""

from __future__ import annotations

import argparse

from distill_hetero import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill-hetero", description="Heterogeneous teacher-student LLM distillation with intermediate-layer alignment (Zhai, Wang & Li, CCL 2024)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return 0
