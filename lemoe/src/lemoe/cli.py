"""Command line of `lemoe`."""

from __future__ import annotations

import argparse

from lemoe import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lemoe", description="LEMoE: lifelong model editing with a mixture-of-experts adaptor (Wang & Li, EMNLP 2024)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return 0
