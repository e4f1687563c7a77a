"""Command line of `infodiffusion`."""

from __future__ import annotations

import argparse

from infodiffusion import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infodiffusion", description="InfoDiffusion: information-entropy-aware text diffusion (Wang, Li & Li, Findings of EMNLP 2023)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return 0
