"""Command line of `semantic-peft`."""

from __future__ import annotations

import argparse

from semantic_peft import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="semantic-peft", description="Semantic are Beacons: semantic analysis of PEFT knowledge learning (Wang & Li, Findings of ACL 2024)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return 0
