"""Results files: atomic JSON written with the run's provenance, and markdown tables.

A results JSON holds ``metrics``, the resolved ``config``, ``versions`` of the main
libraries, the ``git_commit``, the ``device``, ``wall_time_s`` and any ``extra`` fields.
Files are written to a temporary file in the same folder and renamed, so a crash never
leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = ("torch", "transformers", "peft", "accelerate", "datasets")


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file + rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """JSON (indent 2, keys in insertion order) written atomically. Serialises first."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: str | Path | None = None) -> str | None:
    """The checkout's commit, with ``-dirty`` when tracked files are modified."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


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
        "git_commit": git_commit(Path(path).resolve().parent if Path(path).parent.exists() else None),
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
        record = json.loads(file.read_text())
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
