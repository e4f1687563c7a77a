"""Thin common layer shared by the paper packages.

Submodules are imported lazily so that ``import shared_utils`` stays cheap (no torch):

- :mod:`shared_utils.seeding`  -- ``seed_everything``
- :mod:`shared_utils.device`   -- ``AcceleratorConfig``, ``build_accelerator``
- :mod:`shared_utils.tracking` -- ``get_logger``, ``configure_wandb_mode``
- :mod:`shared_utils.config`   -- YAML + ``--key value`` dataclass configs
- :mod:`shared_utils.results`  -- atomic results files and markdown tables
- :mod:`shared_utils.models`   -- hub id / local folder / embedded alias -> model
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "seed_everything": "seeding",
    "AcceleratorConfig": "device",
    "build_accelerator": "device",
    "describe_accelerator": "device",
    "save_state_atomically": "device",
    "get_logger": "tracking",
    "configure_wandb_mode": "tracking",
    "ConfigError": "config",
    "load_config": "config",
    "parse_config_cli": "config",
    "dump_config": "config",
    "config_to_dict": "config",
    "write_results": "results",
    "atomic_write_text": "results",
    "atomic_write_json": "results",
    "load_results": "results",
    "render_markdown_table": "results",
    "replace_marked_section": "results",
    "resolve_model": "models",
    "load_causal_lm": "models",
    "load_encoder": "models",
    "EmbeddedModelMissing": "models",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'shared_utils' has no attribute {name!r}")
