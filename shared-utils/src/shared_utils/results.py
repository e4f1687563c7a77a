"""Results files: atomic JSON written with the run's provenance, and markdown tables.

A results JSON holds ``metrics``, the resolved ``config``, ``versions`` of the main
libraries, the ``git_commit``, the ``device``, ``wall_time_s`` and any ``extra`` fields.
Files are written to a temporary file in the same folder and renamed (:mod:`shared_utils.atomic`),
so a crash never leaves a half-written file behind. ``python -m shared_utils.results --require-clean``
is the check ``make reproduce-<pkg>`` runs before a run stamps results.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json, atomic_write_text
from .errors import ConfigError, RecordError

TRACKED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets")
# Paths that runs themselves regenerate: a change there does not make the code "dirty".
GENERATED_PATHS = (":(exclude)results", ":(exclude,glob)**/README.md", ":(exclude)README.md")


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git(args: list[str], cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=10)
    return done.stdout


def _repo_root(cwd: str | Path | None) -> Path:
    """Top of the checkout holding ``cwd`` (default: the one shared_utils runs from)."""
    return Path(_git(["rev-parse", "--show-toplevel"], Path(cwd) if cwd else Path(__file__).resolve().parent).strip())


def modified_code_files(cwd: str | Path | None = None) -> list[str] | None:
    """Tracked files with uncommitted changes, results and READMEs excepted; None outside a checkout."""
    try:
        root = _repo_root(cwd)
        out = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *GENERATED_PATHS], root)
    except (OSError, subprocess.SubprocessError):
        return None
    return [line[3:] for line in out.splitlines() if line.strip()]


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The commit of the checkout the code runs from (``cwd``, default: where shared_utils lives),
    with ``-dirty`` when tracked code is modified. Changes under ``results/`` and to READMEs,
    which runs regenerate themselves, do not count. None outside a git checkout."""
    try:
        root = _repo_root(cwd)
        commit = _git(["rev-parse", "HEAD"], root).strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if modified_code_files(root) else commit


def require_clean_checkout(allow_dirty: bool = False, cwd: str | Path | None = None) -> None:
    """Refuse (``ConfigError``) to stamp results from code with uncommitted changes, unless allowed."""
    modified = modified_code_files(cwd)
    if modified and not allow_dirty:
        shown = ", ".join(modified[:8]) + (" ..." if len(modified) > 8 else "")
        raise ConfigError(
            f"refusing to write results from a checkout with uncommitted changes ({shown}): the code that "
            "produced them would not be in the history. Commit first, or allow it (ALLOW_DIRTY=1 / --allow-dirty)"
        )


def device_description() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} threads={torch.get_num_threads()}"


def write_results(
    path: str | Path,
    metrics: dict[str, Any],
    config: Any = None,
    *,
    wall_time_s: float | None = None,
    extra: dict[str, Any] | None = None,
    extra_packages: Sequence[str] = (),
) -> dict[str, Any]:
    """Write one run's results JSON atomically and return what was written."""
    from .config import config_to_dict

    if config is not None and not isinstance(config, dict):
        config = config_to_dict(config)
    record = {
        "metrics": metrics,
        "config": config,
        "versions": package_versions((*TRACKED_PACKAGES, *extra_packages)),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "device": device_description(),
        "wall_time_s": wall_time_s,
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        record.update(extra)
    atomic_write_json(path, record)
    return record


def load_results(folder: str | Path, pattern: str = "*.json") -> list[dict[str, Any]]:
    """Every results JSON in ``folder`` (sorted by file name), each with its ``_file``."""
    rows = []
    for file in sorted(Path(folder).glob(pattern)):
        try:
            record = json.loads(file.read_text())
        except json.JSONDecodeError as err:
            raise RecordError(f"{file}: not valid JSON ({err.msg} at line {err.lineno})") from None
        record["_file"] = file.name
        rows.append(record)
    return rows


def _format_cell(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "\\|")


def render_markdown_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str] | dict[str, str],
    digits: int = 3,
    bold_best: dict[str, str] | None = None,
) -> str:
    """A GitHub markdown table.

    ``columns`` lists keys (or maps key -> header); nested keys use dots (``metrics.rel``).
    ``bold_best`` maps a key to ``"max"`` or ``"min"`` to bold the best value per column.
    """
    headers = dict(columns) if isinstance(columns, dict) else {c: c for c in columns}
    keys = list(headers)
    values = [[_lookup(row, key) for key in keys] for row in rows]
    best: dict[int, Any] = {}
    for j, key in enumerate(keys):
        rule = (bold_best or {}).get(key)
        numbers = [v[j] for v in values if isinstance(v[j], (int, float)) and not isinstance(v[j], bool)]
        if rule and numbers:
            best[j] = max(numbers) if rule == "max" else min(numbers)
    lines = ["| " + " | ".join(headers[k] for k in keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    for row_values in values:
        cells = []
        for j, value in enumerate(row_values):
            cell = _format_cell(value, digits)
            if j in best and value == best[j]:
                cell = f"**{cell}**"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _lookup(row: dict[str, Any], dotted: str) -> Any:
    node: Any = row
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def check_marked_section(path: str | Path, name: str, section_option: str | None = None) -> None:
    """Fail early (before the minutes of work whose table it will take) when the README ``path`` is
    missing or lacks the ``<!-- name:start -->`` / ``<!-- name:end -->`` markers; the
    :class:`ConfigError` names the ``readme`` option (and ``section_option`` when the section name
    is an option too)."""
    readme = Path(path)
    if not readme.is_file():
        raise ConfigError(f"option 'readme': {path} does not exist (relative paths start at the working directory)")
    text = readme.read_text()
    for marker in (f"<!-- {name}:start -->", f"<!-- {name}:end -->"):
        if marker not in text:
            hint = f" (option '{section_option}')" if section_option else ""
            raise ConfigError(f"option 'readme': {path} has no {marker!r} marker{hint}")


def replace_marked_section(path: str | Path, name: str, content: str) -> bool:
    """Replace the text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``.

    Used to put generated tables into READMEs. Returns whether the file changed; raises
    ``ValueError`` when the markers are missing, so a table is never silently dropped.
    """
    path = Path(path)
    text = path.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"{path} has no '{start}' ... '{end}' markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    new_text = f"{head}{start}\n{content.rstrip()}\n{end}{tail}"
    if new_text == text:
        return False
    atomic_write_text(path, new_text)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """``--require-clean [--allow-dirty]``: exit 2 with the modified files named when code is dirty."""
    import argparse

    from .cli import run_cli

    parser = argparse.ArgumentParser(prog="python -m shared_utils.results")
    parser.add_argument("--require-clean", action="store_true", help="fail when tracked code has uncommitted changes")
    parser.add_argument("--allow-dirty", action="store_true", help="only warn")
    args = parser.parse_args(argv)

    def check(_: object) -> int:
        if args.require_clean:
            require_clean_checkout(args.allow_dirty)
        return 0

    return run_cli(check, parser.prog)


if __name__ == "__main__":
    raise SystemExit(main())
