"""Writes that never leave a half-written file or folder behind.

Everything is written next to its destination under a temporary name and renamed into
place, so a crash at any point leaves the old output or the new one. Files and folders get
the permissions a plain ``open``/``mkdir`` would give them (the process umask), not the
0600/0700 of ``tempfile``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The caller writes the whole file to the yielded path (any writer: ``savefig``,
    ``torch.save``...). On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file + fsync + rename."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
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


def headless_pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures are only saved, on machines
    without a display). Needs matplotlib, like :func:`save_figure`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` atomically (format from the suffix of ``path``), then close the figure.

    Needs matplotlib, which the packages that draw figures declare (shared-utils does not).
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    try:
        with atomic_file(path, suffix=path.suffix) as tmp:
            fig.savefig(tmp, **savefig_kwargs)
    finally:
        plt.close(fig)
    return path


def _backup_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it replaces ``path``.

    Write the whole output (``save_pretrained``, tokenizer, metadata) into the yielded folder.
    On an exception it is removed and the old ``path`` stays as it was. The swap is two
    renames (old to ``.<name>.old``, new into place); should the process die between them,
    the next ``atomic_folder`` call on the same path, or :func:`recover_folder`, puts the old
    folder back first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        backup = _backup_name(path)
        if path.exists():
            os.replace(path, backup)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def recover_folder(path: str | Path) -> bool:
    """Undo a swap interrupted between its two renames; True when a folder was restored."""
    path = Path(path)
    backup = _backup_name(path)
    if backup.exists() and not path.exists():
        os.replace(backup, path)
        return True
    if backup.exists():
        shutil.rmtree(backup, ignore_errors=True)
    return False
