"""Tests for aisci.yamlfile: user YAML without aliases, bombs, NaN or undecodable bytes."""

import time

import pytest
import yaml

from aisci.schema import validate_config
from aisci.errors import InputError
from aisci.yamlfile import check_plain, load, loads

BOMB = "".join(
    ["a: &a [x, x, x, x, x, x, x, x, x, x]\n"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)]
    + ["calling: {chunk_size: *i}\n"]
)


def test_alias_bomb_refused_at_once(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(BOMB)
    start = time.monotonic()
    with pytest.raises(InputError, match=r"^config.yaml line 2: not valid YAML \(YAML aliases \(\*name\) are not allowed in aisci files\)$"):
        load(path, "config.yaml")
    assert time.monotonic() - start < 5  # refused while parsing, nothing expanded


def test_validation_refuses_what_another_loader_let_through():
    """Snakemake parses config files itself: shared containers (aliases) are refused before any walk."""
    config = yaml.safe_load(BOMB)  # 10**9 leaves if expanded
    start = time.monotonic()
    with pytest.raises(InputError, match=r"config.yaml: .*: YAML aliases \(&anchor / \*alias\) are not allowed"):
        validate_config(config, "config.yaml")
    assert time.monotonic() - start < 5


def test_too_many_values_refused():
    with pytest.raises(InputError, match="more than 100,000 values"):
        check_plain({"samples": list(range(200_000))}, "config.yaml")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_nan_and_infinity_refused(value):
    config = {"samples": "s.tsv", "reference": "r.fa", "filter": {"min_qual": yaml.safe_load(value)}}
    with pytest.raises(InputError, match=r"config.yaml: filter.min_qual: .* is not a finite number"):
        validate_config(config, "config.yaml")
    # the same as a --config override, which arrives as a string
    config["filter"]["min_qual"] = value
    with pytest.raises(InputError, match=r"filter.min_qual: .* is not a finite number"):
        validate_config(config, "config.yaml")


def test_undecodable_and_bom(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(InputError, match=r"site.yaml: not UTF-8 text \(byte 9"):
        load(bad)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbfname: x\n")
    assert load(bom) == {"name": "x"}


def test_plain_documents_load():
    assert loads("a: 1\nb: [x, y]\nc: {d: null}\n", "x.yaml") == {"a": 1, "b": ["x", "y"], "c": {"d": None}}
    with pytest.raises(InputError, match=r"^x.yaml line 2: not valid YAML \(expected ',' or ']', but got '<stream end>'\)$"):
        loads("a: [1\n", "x.yaml")
    with pytest.raises(InputError, match="not valid YAML"):
        loads("!!python/object/apply:os.system ['touch PWNED']", "x.yaml")


@pytest.mark.parametrize("depth", [150, 5000])
def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path, depth):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(InputError, match=r"deep.yaml: nested more than 100 levels deep"):
        load(path, "deep.yaml")
    config = {"samples": "s.tsv", "reference": "r.fa", "evaluation": {"bed": None}}
    node = config["evaluation"]
    for _ in range(depth if depth < 900 else 900):
        node["bed"] = {}
        node = node["bed"]
    with pytest.raises(InputError, match=r"config.yaml: nested more than 100 levels deep"):
        validate_config(config, "config.yaml")
