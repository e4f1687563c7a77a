import pytest

from distill_hetero.config import MappingConfig
from distill_hetero.mapping import resolve_mapping
from shared_utils.errors import ConfigError


@pytest.mark.parametrize(
    ("ls", "lt", "expected"),
    [
        # i * Lt / Ls, rounded half up; 0 <-> 0 and Ls <-> Lt pinned
        (6, 30, [(0, 0), (1, 5), (2, 10), (3, 15), (4, 20), (5, 25), (6, 30)]),
        (8, 30, [(0, 0), (1, 4), (2, 8), (3, 11), (4, 15), (5, 19), (6, 23), (7, 26), (8, 30)]),  # 3.75 7.5 11.25 ...
        (5, 12, [(0, 0), (1, 2), (2, 5), (3, 7), (4, 10), (5, 12)]),  # 2.4 4.8 7.2 9.6
        (12, 48, [(i, 4 * i) for i in range(13)]),  # GPT-2 base <- GPT-2 XL
        (2, 4, [(0, 0), (1, 2), (2, 4)]),
    ],
)
def test_uniform_matches_hand_worked_cases(ls, lt, expected):
    assert resolve_mapping(MappingConfig(rule="uniform"), ls, lt) == expected


def test_uniform_without_embedding_drops_layer_zero():
    assert resolve_mapping(MappingConfig(rule="uniform", include_embedding=False), 6, 30)[0] == (1, 5)


@pytest.mark.parametrize(
    ("ls", "lt", "k", "expected"),
    [
        (6, 30, 2, [(5, 29), (6, 30)]),
        (8, 24, 3, [(6, 22), (7, 23), (8, 24)]),
    ],
)
def test_last_k(ls, lt, k, expected):
    assert resolve_mapping(MappingConfig(rule="last-k", k=k), ls, lt) == expected


@pytest.mark.parametrize(
    ("ls", "lt", "k", "expected"),
    [
        (6, 30, 2, [(2, 10), (4, 20), (6, 30)]),
        (7, 30, 3, [(3, 13), (6, 26), (7, 30)]),  # 12.86 -> 13, 25.71 -> 26, last pinned
    ],
)
def test_skip(ls, lt, k, expected):
    assert resolve_mapping(MappingConfig(rule="skip", k=k), ls, lt) == expected


def test_explicit_and_its_errors():
    assert resolve_mapping(MappingConfig(rule="explicit", pairs=[[1, 3], [2, 30]]), 6, 30) == [(1, 3), (2, 30)]
    with pytest.raises(ValueError, match=r"mapping.pairs\[1\]: teacher layer 31 is outside 0..30"):
        resolve_mapping(MappingConfig(rule="explicit", pairs=[[1, 3], [2, 31]]), 6, 30)
    with pytest.raises(ValueError, match="last-k"):
        resolve_mapping(MappingConfig(rule="last-k", k=7), 6, 30)
    with pytest.raises(ConfigError, match=r"MappingConfig\.rule must be one of \['uniform', 'last-k', 'skip',"):
        MappingConfig(rule="learned")
