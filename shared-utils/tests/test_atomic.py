import os
import stat

import pytest

from shared_utils import atomic
from shared_utils.atomic import atomic_folder, atomic_write_text, recover_folder, save_figure


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_and_folders_get_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_folder(tmp_path / "model") as tmp:
            (tmp / "weights.bin").write_text("w")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.txt") == 0o644
    assert _mode(tmp_path / "model") == 0o755


def test_crash_inside_folder_write_keeps_old_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("old")
    with pytest.raises(RuntimeError, match="killed"), atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("new, half")
        raise RuntimeError("killed while writing")
    assert (target / "config.json").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["model"]  # no temporary folder left


def test_new_folder_replaces_old_completely(tmp_path):
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "stale.bin").write_text("1")
    with atomic_folder(target) as tmp:
        (tmp / "fresh.bin").write_text("2")
    assert os.listdir(target) == ["fresh.bin"]
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_crash_between_the_two_renames_is_recovered(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("old")
    real_replace = os.replace
    calls = []

    def die_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", die_on_second)
    with pytest.raises(KeyboardInterrupt), atomic_folder(target) as tmp:
        (tmp / "config.json").write_text("new")
    monkeypatch.setattr(atomic.os, "replace", real_replace)
    assert not target.exists()
    assert recover_folder(target)
    assert (target / "config.json").read_text() == "old"


def test_save_figure_is_atomic_and_closes(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "curve.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert os.listdir(tmp_path) == ["curve.png"]
