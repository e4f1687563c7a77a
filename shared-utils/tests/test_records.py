import json

import pytest

from shared_utils.errors import RecordError, UserError
from shared_utils.records import looks_like_path, parse_records, read_records, require_local


def test_jsonl_error_names_file_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(RecordError, match=r"d\.jsonl line 3: not valid JSON"):
        read_records(path)


def test_json_array_error_names_file(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"a": 1},')
    with pytest.raises(RecordError, match=r"d\.json: not valid JSON .* line 1"):
        read_records(path)
    path.write_text('{"a": 1}')
    with pytest.raises(RecordError, match="expected a JSON array of records, got dict"):
        read_records(path)


def test_reads_both_formats_and_limit(tmp_path):
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"i": i}) for i in range(5)))
    (tmp_path / "d.json").write_text(json.dumps([{"i": i} for i in range(5)]))
    assert read_records(tmp_path / "d.jsonl", limit=2) == [{"i": 0}, {"i": 1}]
    assert read_records(tmp_path / "d.json") == [{"i": i} for i in range(5)]


def test_missing_local_path_is_an_error_not_a_hub_id(tmp_path):
    assert looks_like_path("./x.jsonl") and looks_like_path("data/x.json") and looks_like_path("/a/b/c")
    assert not looks_like_path("MiniLLM/dolly") and not looks_like_path("zsre")
    with pytest.raises(RecordError, match=r"not found: missing\.jsonl"):
        require_local("missing.jsonl")
    assert require_local("MiniLLM/dolly") is None
    (tmp_path / "x.jsonl").write_text("")
    assert require_local(str(tmp_path / "x.jsonl")) == tmp_path / "x.jsonl"
    assert issubclass(RecordError, UserError)


def _parse(record, index):
    if "q" not in record:
        raise RecordError(f"record {index}: missing field 'q'")
    return record["q"]


def test_parse_records_raises_or_names_every_skipped(caplog):
    raws = [{"q": "a"}, {}, {"q": "b"}, {"x": 1}]
    with pytest.raises(RecordError, match="record 1: missing field 'q'"):
        parse_records(raws, _parse, "set.jsonl")
    import logging

    logger = logging.getLogger("shared_utils.records")
    logger.addHandler(caplog.handler)
    try:
        assert parse_records(raws, _parse, "set.jsonl", skip_invalid=True) == ["a", "b"]
    finally:
        logger.removeHandler(caplog.handler)
    text = caplog.text
    assert "skipped 2 of 4 records of set.jsonl" in text
    assert "record 1: missing field 'q'" in text and "record 3: missing field 'q'" in text


def test_shared_data_root_from_env_then_code_folder_then_cwd(tmp_path, monkeypatch):
    from shared_utils import records

    monkeypatch.delenv("SHARED_DATA", raising=False)
    monkeypatch.setenv("MY_PKG_DATA", str(tmp_path / "mine"))
    assert records.shared_data_root("MY_PKG_DATA") == tmp_path / "mine"
    monkeypatch.delenv("MY_PKG_DATA")
    # installed: the code lives in a venv; the folder is found above the current directory
    monkeypatch.setattr(records, "__file__", str(tmp_path / "venv" / "site-packages" / "shared_utils" / "records.py"))
    (tmp_path / "shared" / "data" / "knowledge-editing").mkdir(parents=True)
    (tmp_path / "checkout" / "sub").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "checkout" / "sub")
    assert records.shared_data_root() == tmp_path / "shared" / "data"
    sample = tmp_path / "shared" / "data" / "knowledge-editing" / "z.json"
    sample.write_text("[]")
    assert require_local("shared:knowledge-editing/z.json") == sample
    with pytest.raises(RecordError, match=r"not found: .*knowledge-editing/missing\.json"):
        require_local("shared:knowledge-editing/missing.json")
    (tmp_path / "venv").mkdir()
    monkeypatch.chdir(tmp_path / "venv")
    (tmp_path / "shared").rename(tmp_path / "elsewhere")
    assert records.shared_data_root() != tmp_path / "shared" / "data"
    # whether a folder above tmp_path (e.g. /tmp/shared/data) exists depends on the machine, so the
    # error for "none found" is checked with the search itself answering None
    monkeypatch.setattr(records, "shared_data_root", lambda env=None: None)
    with pytest.raises(RecordError, match="no shared/data folder found"):
        require_local("shared:knowledge-editing/z.json")
