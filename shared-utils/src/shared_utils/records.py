"""Reading data files of records (JSON arrays or JSON Lines) with errors that name file and line.

Every loader of the paper packages reads its local files through :func:`read_records` and
checks them through :func:`parse_records`, so a malformed record is either an error naming
it or skipped with a warning that names each one and the count, never dropped silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from .errors import RecordError
from .tracking import get_logger

T = TypeVar("T")
SHARED_PREFIX = "shared:"
SHARED_DATA_ENV = "SHARED_DATA"
DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt", ".arrow")

logger = get_logger(__name__)


def looks_like_path(source: str) -> bool:
    """True for names a user means as a local file or folder rather than a hub id.

    A hub id is ``name`` or ``owner/name``; a source that starts with ``.``, ``/`` or ``~``,
    has more than one ``/``, or ends in a data-file suffix is taken for a local path.
    """
    if source.startswith((".", "/", "~", SHARED_PREFIX)):
        return True
    return source.count("/") > 1 or source.lower().endswith(DATA_SUFFIXES)


def shared_data_root(env: str | None = None) -> Path | None:
    """The folder of the benchmark samples (``shared/data`` beside the checkout).

    ``$<env>`` when given and set, else ``$SHARED_DATA``, else the first ``shared/data`` in or
    above the code's own folder (a checkout, an editable install) or the current directory (an
    installed package run from a checkout). None when there is none.
    """
    for name in (env, SHARED_DATA_ENV):
        if name and os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "shared" / "data").is_dir():
                return folder / "shared" / "data"
    return None


def resolve_shared(source: str) -> str:
    """``shared:<relative path>`` -> that file under :func:`shared_data_root`; other sources as they are.

    Shipped configs name the benchmark samples this way, so they work from any directory.
    """
    if not source.startswith(SHARED_PREFIX):
        return source
    root = shared_data_root()
    if root is None:
        raise RecordError(f"{source}: no shared/data folder found above {Path.cwd()}; set {SHARED_DATA_ENV}")
    return str(root / source[len(SHARED_PREFIX) :])


def require_local(source: str, what: str = "data file") -> Path | None:
    """``Path`` of an existing local ``source`` (``shared:...`` resolved first); None for a hub id;
    :class:`RecordError` for a path that does not exist (so it is never looked up on the Hub)."""
    source = resolve_shared(source)
    path = Path(source).expanduser()
    if path.exists():
        return path
    if looks_like_path(source):
        raise RecordError(f"{what} not found: {source} (no such file or folder)")
    return None


def read_records(path: str | Path, limit: int = 0) -> list[Any]:
    """Records of a ``.jsonl`` file (one JSON value per non-blank line) or a JSON array.

    ``limit`` keeps the first N. Errors name the file and, for JSON Lines, the line.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError(f"data file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise RecordError(f"{path} line {line_no}: not valid JSON ({err.msg})") from None
            if limit and len(records) >= limit:
                break
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RecordError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, list):
        raise RecordError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    return data[:limit] if limit else data


def parse_records(raws: list[Any], parse: Callable[[Any, int], T], source: str, skip_invalid: bool = False) -> list[T]:
    """``parse(record, index)`` for every record; it raises :class:`RecordError` for a bad one.

    With ``skip_invalid`` the bad records are left out and one warning names every one of
    them (index and reason) and their count; otherwise the first bad record is the error.
    """
    parsed: list[T] = []
    skipped: list[str] = []
    for index, raw in enumerate(raws):
        try:
            parsed.append(parse(raw, index))
        except RecordError as err:
            if not skip_invalid:
                raise
            skipped.append(str(err))
    if skipped:
        logger.warning(
            "skipped %d of %d records of %s as invalid:\n  %s", len(skipped), len(raws), source, "\n  ".join(skipped)
        )
    return parsed
