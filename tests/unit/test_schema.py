"""aisci.schema: the parameters page is generated from the schemas and kept equal to them."""

from __future__ import annotations

from aisci.schema import DOCUMENTED, load_schema, parameters_page
from tests.conftest import REPO


def test_the_parameters_page_matches_the_schemas():
    page = (REPO / "docs" / "parameters.md").read_text()
    assert page == parameters_page(), "docs/parameters.md is stale: run `make docs`"


def test_every_key_of_every_documented_schema_is_on_the_page():
    page = parameters_page()

    def keys(schema, prefix=""):
        for key, sub in schema.get("properties", {}).items():
            yield f"{prefix}{key}"
            yield from keys(sub, f"{prefix}{key}.")

    for name, _ in DOCUMENTED:
        for key in keys(load_schema(name)):
            assert f"| `{key}` |" in page, f"{name}: {key} missing from the parameters page"


def test_every_schema_key_has_a_description_and_a_type():
    """What the page shows is never empty: a key without a description or type is a schema defect."""
    missing = []

    def walk(name, schema, prefix=""):
        for key, sub in schema.get("properties", {}).items():
            if not str(sub.get("description", "")).strip() or ("type" not in sub and "enum" not in sub):
                missing.append(f"{name}: {prefix}{key}")
            walk(name, sub, f"{prefix}{key}.")
            if isinstance(sub.get("additionalProperties"), dict):
                walk(name, sub["additionalProperties"], f"{prefix}{key}.<name>.")
            if isinstance(sub.get("items"), dict):
                walk(name, sub["items"], f"{prefix}{key}[].")

    for name, _ in DOCUMENTED:
        walk(name, load_schema(name))
    assert missing == []


def test_an_old_config_key_names_the_new_one():
    import pytest

    from aisci.errors import InputError
    from aisci.schema import validate_config

    with pytest.raises(InputError, match=r"^config.yaml: splicing: renamed 'splice' \(the same keys below it\)$"):
        validate_config({"samples": "s.tsv", "reference": "r.fa", "splicing": {"enabled": False}}, "config.yaml")
