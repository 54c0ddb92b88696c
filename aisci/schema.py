"""The schema engine: packaged JSON schemas (draft 2020-12), defaults, and errors that name the file and key."""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any, Callable, TypeVar

import yaml

from aisci import yamlfile
from aisci.errors import InputError
from aisci.layers import Sources

T = TypeVar("T")

# Keys a pipeline's config once spelled otherwise: the old spelling gets a one-line error naming the new one.
RENAMED_KEYS: dict[str, dict[str, str]] = {"config": {"splicing": "splice"}}


def as_sources(source: "str | Sources") -> Sources:
    """A config's name, or its layers, as layers."""
    return source if isinstance(source, Sources) else Sources.single(source)


class Problems:
    """Collects every problem found, so that one run reports them all, not only the first."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """Call ``func``; record its InputError (lines of several problems included) and return None."""
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            self.messages += [m for m in str(exc).split("\n") if m not in self.messages]
            return None

    def raise_any(self) -> None:
        """Raise one InputError listing every problem, if any was found."""
        if self.messages:
            raise InputError("\n".join(self.messages))


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load a packaged JSON schema (``config`` or ``samples``)."""
    text = resources.files("aisci.schemas").joinpath(f"{name}.schema.yaml").read_text()
    return yaml.safe_load(text)


@cache
def schema_validator(name: str) -> Any:
    """A compiled draft 2020-12 validator for a packaged schema."""
    from jsonschema import Draft202012Validator

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def apply_defaults(schema: dict[str, Any], data: dict[str, Any]) -> None:
    """Fill missing keys from ``default`` values, recursing into nested objects."""
    for key, sub in schema.get("properties", {}).items():
        if key not in data and "default" in sub:
            data[key] = copy.deepcopy(sub["default"])
        if isinstance(data.get(key), dict) and sub.get("type") == "object":
            apply_defaults(sub, data[key])


def coerce_scalars(schema: dict[str, Any], data: dict[str, Any]) -> None:
    """Turn strings into the numbers/booleans the schema expects.

    Snakemake's ``--config 'calling={chunk_size: 100000}'`` delivers nested values as strings.
    """
    for key, sub in schema.get("properties", {}).items():
        value = data.get(key)
        types = sub.get("type")
        types = [types] if isinstance(types, str) else (types or [])
        if isinstance(value, dict) and "object" in types:
            coerce_scalars(sub, value)
        elif isinstance(value, str):
            parsed = yaml.safe_load(value) if value.strip() else value
            if ("integer" in types and type(parsed) is int) or (
                "number" in types and type(parsed) in (int, float)
            ) or ("boolean" in types and type(parsed) is bool):
                data[key] = parsed


def describe_error(error: Any, source: "str | Sources") -> str:
    """A jsonschema error as 'file: field: problem' (lines when it holds several, e.g. unknown keys)."""
    return "\n".join(_describe(error, as_sources(source)))


def _describe(error: Any, sources: Sources) -> list[str]:
    """Turn a jsonschema error into 'file: field: problem' lines, naming the file that set the field."""
    field = ".".join(str(p) for p in error.absolute_path)
    where = sources.where(field)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = f"{field}." if field else ""
        return [f"{sources.of(prefix + key)}: unknown key '{prefix}{key}' (allowed: {', '.join(allowed)})"
                for key in unknown]
    if error.validator == "required":
        missing = [k for k in error.validator_value if isinstance(error.instance, dict) and k not in error.instance]
        prefix = f"{field}." if field else ""
        return [f"{sources.names()}: {prefix}{k}: required, not set" for k in missing] or [f"{where}: {error.message}"]
    if error.validator == "pattern":
        return [f"{where}: {error.instance!r} must match {error.validator_value}"]
    if error.validator == "enum":
        return [f"{where}: {error.instance!r} is not one of {', '.join(map(_yaml_word, error.validator_value))}"]
    return [f"{where}: {error.message}"]


def _yaml_word(value: Any) -> str:
    """An enum value as it is written in YAML (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def validate_config(config: dict[str, Any], source: "str | Sources" = "config", schema: str = "config") -> dict[str, Any]:
    """Validate a pipeline config against its schema and return a copy with defaults filled.

    Args:
        config: the parsed config (config.yaml merged with --config overrides).
        source: how to name the config in messages: its file name, or its layers (then each message
            names the file that set the key).
        schema: aisci/schemas/<schema>.schema.yaml (config: the germline pipeline's; protein: workflows/protein's).

    Returns:
        The validated config with every default filled in.

    Raises:
        InputError: the config breaks the schema; one line per problem, each naming the key.
    """
    sources = as_sources(source)
    source = sources.names()
    if not isinstance(config, dict):
        raise InputError(f"{source}: must be a mapping of keys to values")
    yamlfile.check_plain(config, source)  # before deepcopy, which recurses: depth, size, aliases, NaN/infinity
    for key, new in RENAMED_KEYS.get(schema, {}).items():
        if key in config:
            raise InputError(f"{sources.where(key)}: renamed '{new}' (the same keys below it)")
    config = copy.deepcopy(config)
    coerce_scalars(load_schema(schema), config)
    yamlfile.check_plain(config, source)  # --config values parsed just now (.nan, .inf)
    errors = sorted(schema_validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines: list[str] = []
        for error in errors:
            lines += [line for line in _describe(error, sources) if line not in lines]
        raise InputError("\n".join(lines))
    apply_defaults(load_schema(schema), config)
    return config


# --------------------------------------------------------------------------- the parameters page
# The pages of docs/parameters.md, in order: (schema, what it configures). `make docs` writes the page
# and tests/unit/test_schema.py keeps it equal to the schemas.
DOCUMENTED = (
    ("config", "the germline pipeline's `config.yaml` (`workflows/germline`, the default of `aisci init`)"),
    ("samples", "the germline pipeline's sample sheet (one row per FASTQ pair or BAM/CRAM)"),
    ("protein", "the protein pipeline's `config.yaml` (`workflows/protein`)"),
    ("reanalysis", "the reanalysis pipeline's `config.yaml` (`workflows/reanalysis`)"),
    ("site", "a site description (`site.yaml`): centres, partitions, transfers and profile settings, "
             "for `aisci profile new`, `aisci plan` and `aisci simulate-cluster`"),
    ("pipeline", "a pipeline's catalog metadata (`workflows/<name>/pipeline.yaml`), for `aisci catalog`"),
)


def parameters_page() -> str:
    """docs/parameters.md: every key of every schema in `DOCUMENTED`, with type, default and description."""
    out = ["# Parameters", "",
           "Every key that aisci reads from a config, sample sheet or site file, generated from the packaged",
           "JSON schemas (`aisci/schemas/`) by `make docs`; a test keeps this page equal to them. Unknown keys",
           "are refused (every object is closed), with the allowed keys named.", ""]
    out += [f"- [{load_schema(name)['title']}](#{_slug(load_schema(name)['title'])}): {what}" for name, what in DOCUMENTED]
    for name, what in DOCUMENTED:
        schema = load_schema(name)
        out += ["", f"## {schema['title']}", "", f"`aisci/schemas/{name}.schema.yaml`: {what}.", "",
                " ".join(str(schema.get("description", "")).split()), "",
                "| key | type | default | description |", "|---|---|---|---|"]
        out += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in _rows(schema, "")]
    return "\n".join(out) + "\n"


def _rows(schema: dict[str, Any], prefix: str) -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, description) of every property under ``schema``, depth first."""
    rows = []
    required = set(schema.get("required", []))
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        rows.append((path, _type(sub), "required" if key in required else _default(sub),
                     " ".join(str(sub.get("description", "")).split()).replace("|", "\\|")))
        rows += _rows(sub, f"{path}.")
        items = sub.get("items")
        if isinstance(items, dict) and "properties" in items:
            rows += _rows(items, f"{path}[].")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        name = prefix.rstrip(".").rsplit(".", 1)[-1].rstrip("s") or "name"
        rows += _rows(extra, f"{prefix}<{name}>.")
    return rows


def _type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "any")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(str(k) for k in kinds)
    if "enum" in schema:
        text += ": " + ", ".join(f"`{_yaml_word(v)}`" for v in schema["enum"])
    return text


def _default(schema: dict[str, Any]) -> str:
    if "default" not in schema:
        return ""
    value = schema["default"]
    if value is None:
        return "`null`"
    if isinstance(value, (dict, list)) and not value:
        return ""
    return f"`{_yaml_word(value)}`" if not isinstance(value, (dict, list)) else f"`{yaml.safe_dump(value, default_flow_style=True).strip()}`"


def _slug(title: str) -> str:
    """The anchor GitHub gives a heading."""
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c in "-_")
