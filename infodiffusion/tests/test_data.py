import json

import pytest
import torch

from infodiffusion.builtin import builtin_pairs
from infodiffusion.data import DataError, VocabMap, decode, load_pairs, pack, read_pairs, tokenize_pairs
from infodiffusion.run import load_tokenizer
from shared_utils.errors import ConfigError, RecordError


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("minilm-l6")


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"src": "a", "trg": ', "line 2: not valid JSON"),
        ('{"src": "a"}', "line 2: missing field 'trg'"),
        ('{"src": 3, "trg": "b"}', "line 2: field 'src' must be a string"),
        ('["a", "b"]', "line 2: expected a JSON object"),
    ],
)
def test_malformed_lines_name_the_line(tmp_path, line, message):
    path = tmp_path / "train.jsonl"
    path.write_text('{"src": "ok", "trg": "ok"}\n' + line + "\n")
    with pytest.raises(RecordError, match=message):
        read_pairs(path)
    with pytest.raises(RecordError, match=f"train.jsonl {message}"):
        load_pairs(str(tmp_path), "train")


def test_blank_lines_keep_line_numbers_and_a_json_array_names_the_record(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"src": "a", "trg": "b"}\n\n\n{"src": "a"}\n')
    with pytest.raises(DataError, match=r"pairs\.jsonl line 4: missing field 'trg'"):
        load_pairs(str(path), "train")
    array = tmp_path / "pairs.json"
    array.write_text('[{"src": "a", "trg": "b"}, {"src": "a", "trg": 1}]')
    with pytest.raises(DataError, match=r"pairs\.json record 2: field 'trg' must be a string"):
        load_pairs(str(array), "train")
    assert load_pairs(str(path), "train", limit=1) == [{"src": "a", "trg": "b"}]


def test_a_folder_without_the_split_is_named(tmp_path):
    (tmp_path / "valid.jsonl").write_text('{"src": "a", "trg": "b"}\n')
    with pytest.raises(DataError, match=r"no train\.jsonl .* split 'train'"):
        load_pairs(str(tmp_path), "train")


def test_builtin_is_deterministic_with_disjoint_splits():
    train, test = builtin_pairs("train"), builtin_pairs("test")
    assert train == builtin_pairs("train") and len(train) == 4000 and len(test) == 200
    assert not {p["src"] for p in train} & {p["src"] for p in test}


def test_pack_and_restricted_vocabulary_roundtrip(tokenizer):
    pairs = [{"src": "alice sold the car .", "trg": "the car was sold by alice ."}]
    tok = tokenize_pairs(pairs, tokenizer)
    vocab = VocabMap.build(tokenizer, [s + t for s, t in zip(tok["src_tok"], tok["trg_tok"])])
    assert len(vocab) == 4 + len(set(tok["src_tok"][0] + tok["trg_tok"][0]))
    ids, mask = pack(tok["src_tok"][0], tok["trg_tok"][0], vocab, 20)
    n_src = len(tok["src_tok"][0])
    assert ids[0] == vocab.cls and ids[n_src + 1] == vocab.sep
    assert mask == [0] * (n_src + 2) + [1] * (20 - n_src - 2)
    assert decode(torch.tensor([ids]), torch.tensor([mask]), vocab, tokenizer) == ["the car was sold by alice ."]
    # tokens outside the training vocabulary map to [UNK]
    assert vocab.to_compact(tokenizer("zebra", add_special_tokens=False)["input_ids"]) == [vocab.unk]


def test_pack_truncates_the_longer_side(tokenizer):
    vocab = VocabMap.build(tokenizer, restrict=False)
    ids, mask = pack(list(range(1000, 1020)), list(range(2000, 2004)), vocab, 12)
    assert len(ids) == 12 and sum(mask) == 5  # 4 target words + [SEP] survive, source cut to 5


def test_qqp_sample_loads_and_tokenises(shared_data, tokenizer):
    pairs = load_pairs(str(shared_data / "seq2seq" / "qqp"), "valid", limit=16)
    assert len(pairs) == 16 and all(set(p) == {"src", "trg"} for p in pairs)
    first = json.loads((shared_data / "seq2seq" / "qqp" / "valid.jsonl").read_text().splitlines()[0])
    assert pairs[0] == first
    tok = tokenize_pairs(pairs, tokenizer)
    assert tok[0]["src_tok"] == tokenizer(first["src"], add_special_tokens=False)["input_ids"]
    quasar = load_pairs(str(shared_data / "seq2seq" / "quasar_t"), "test", limit=3)
    assert len(quasar) == 3


def test_splits_join_and_slice_and_a_bad_one_is_named(tmp_path):
    for name, n in (("valid", 3), ("test", 5)):
        lines = [json.dumps({"src": f"{name} {i}", "trg": "t"}) for i in range(n)]
        (tmp_path / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    train = [p["src"] for p in load_pairs(str(tmp_path), "valid+test[:2]")]
    held_out = [p["src"] for p in load_pairs(str(tmp_path), "test[2:]")]
    assert train == ["valid 0", "valid 1", "valid 2", "test 0", "test 1"]
    assert held_out == ["test 2", "test 3", "test 4"]  # disjoint from the training records
    assert [p["src"] for p in load_pairs(str(tmp_path), "valid+test[-1:]", limit=4)] == [*train[:3], "test 4"]
    with pytest.raises(ConfigError, match=r"data.train_split / data.eval_split.*'test\[2\]'"):
        load_pairs(str(tmp_path), "valid+test[2]")
