import json
import os

import pytest

from shared_utils import results
from shared_utils.results import (
    atomic_write_json,
    load_results,
    render_markdown_table,
    replace_marked_section,
    write_results,
)


def test_write_results_records_provenance(tmp_path):
    record = write_results(tmp_path / "row.json", {"rel": 0.5}, {"lr": 1e-3}, wall_time_s=1.5, extra={"name": "x"})
    on_disk = json.loads((tmp_path / "row.json").read_text())
    assert on_disk == record
    assert on_disk["metrics"] == {"rel": 0.5}
    assert on_disk["config"] == {"lr": 1e-3}
    assert on_disk["name"] == "x"
    assert on_disk["wall_time_s"] == 1.5
    assert set(on_disk["versions"]) >= {"torch", "transformers", "peft", "accelerate", "datasets"}
    assert on_disk["versions"]["torch"].startswith("2.")
    assert on_disk["device"].startswith(("cpu", "cuda"))


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write_json(path, {"old": True})

    def crash(_fd):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_json(path, {"new": True})
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["results.json"]  # no temp file left behind


def test_unserialisable_value_leaves_no_file(tmp_path):
    with pytest.raises(TypeError, match="object"):
        atomic_write_json(tmp_path / "x.json", {"bad": object()})
    assert not (tmp_path / "x.json").exists()


def test_markdown_table_exact():
    rows = [{"name": "a", "metrics": {"rel": 0.91234, "loc": 1.0}}, {"name": "b|c", "metrics": {"rel": 0.5}}]
    table = render_markdown_table(
        rows, {"name": "Method", "metrics.rel": "Rel", "metrics.loc": "Loc"}, digits=2, bold_best={"metrics.rel": "max"}
    )
    assert table == ("| Method | Rel | Loc |\n| --- | --- | --- |\n| a | **0.91** | 1.00 |\n| b\\|c | 0.50 | – |\n")


def test_load_results_sorted_with_file_names(tmp_path):
    atomic_write_json(tmp_path / "b.json", {"v": 2})
    atomic_write_json(tmp_path / "a.json", {"v": 1})
    assert [(r["_file"], r["v"]) for r in load_results(tmp_path)] == [("a.json", 1), ("b.json", 2)]


def test_replace_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\noutro\n")
    assert replace_marked_section(readme, "results", "| new |\n")
    assert readme.read_text() == "intro\n<!-- results:start -->\n| new |\n<!-- results:end -->\noutro\n"
    assert not replace_marked_section(readme, "results", "| new |")
    with pytest.raises(ValueError, match="markers"):
        replace_marked_section(readme, "other", "x")


def test_check_marked_section_names_the_option_before_any_work(tmp_path):
    from shared_utils.errors import ConfigError

    readme = tmp_path / "README.md"
    with pytest.raises(ConfigError, match=r"^option 'readme': .*README.md does not exist"):
        results.check_marked_section(readme, "bench")
    readme.write_text("<!-- bench:start -->\n<!-- bench:end -->\n<!-- seeds:start -->\n")
    results.check_marked_section(readme, "bench")
    with pytest.raises(ConfigError, match=r"has no '<!-- seeds:end -->' marker \(option 'readme_section'\)$"):
        results.check_marked_section(readme, "seeds", "readme_section")
    with pytest.raises(ConfigError, match=r"has no '<!-- other:start -->' marker$"):
        results.check_marked_section(readme, "other")
