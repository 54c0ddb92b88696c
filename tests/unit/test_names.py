"""Tests for aisci.names: one name rule, the same in the code and in every schema that takes a name."""

import re

import pytest

from aisci.schema import load_schema
from aisci.errors import InputError
from aisci.names import NAME_PATTERN, NAME_WILDCARD, check_name, name_problem


@pytest.mark.parametrize("name", ["S1", "NA12878", "a.b_c-d", "9", "x" * 64, "HG002.hifi-2"])
def test_good_names(name):
    assert check_name(name, "sample") == name
    assert re.fullmatch(NAME_WILDCARD, name)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("-x", "must match"),  # reads as an option
        ("--help", "must match"),
        (".", "must match"),
        ("..", "must match"),  # escapes its folder
        (".hidden", "must match"),
        ("_x", "must match"),
        ("a b", "must match"),
        ("$(touch PWNED)", "must match"),
        ("a/b", "must match"),
        ("x" * 65, "65 characters long (at most 64)"),
        ("x" * 300, "300 characters long"),
        ("", "non-empty"),
        (7, "non-empty string"),
    ],
)
def test_bad_names(name, problem):
    assert problem in name_problem(name)
    with pytest.raises(InputError, match=re.escape(problem)) as err:
        check_name(name, "samples.tsv line 4: sample")
    assert str(err.value).startswith("samples.tsv line 4: sample ")
    assert len(str(err.value)) < 300  # a long name is shortened in the message


@pytest.mark.parametrize(
    "schema, path",
    [("samples", ["sample"]), ("config", ["protein", "model"]), ("protein", ["model"]),
     ("reanalysis", ["protein", "model"])],
)
def test_schemas_use_the_one_name_rule(schema, path):
    node = load_schema(schema)
    for key in path:
        node = node["properties"][key]
    assert node["pattern"] == NAME_PATTERN


def test_names_stored_by_earlier_versions_stay_readable():
    from aisci.names import check_stored_name

    legacy = "HG002_GIAB_NIST_v4.2.1_PacBio_HiFi_Revio_30x_GRCh38_deepvariant_1.6_run2"  # 72 characters
    assert check_stored_name(legacy, "store.json: sample") == legacy
    for bad in ["../x", "-x", "..", "x" * 201, "a b"]:
        with pytest.raises(InputError, match=r"^store.json: sample "):
            check_stored_name(bad, "store.json: sample")
