"""Every value a rule hands to the shell is quoted: a path, name or number never runs as a command.

A path with a space breaks an unquoted command after hours of upstream jobs, and `$(...)` in a file
or contig name runs. Snakemake's `{x:q}` quotes each value (each file of a list) with shlex.quote.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO

RULES = sorted((REPO / "rules").glob("*.smk"))

# Values that are several options at once, built in Python with shlex.quote/shlex.join (one `:q`
# would make them a single word); tests/workflows/test_hostile_inputs.py runs them with hostile paths.
OPTION_STRINGS = {
    ("evaluate_calls", "params.bed"),
    ("cache_splicing", "params.options"),
    ("score_splicing", "params.options"),
    ("cache_missense", "params.options"),
    ("score_missense", "params.options"),
    ("embed_proteins", "params.options"),
    ("saturate_protein", "params.options"),
    ("score_variants", "params.options"),
    ("report", "params.mqc"),
    ("report_proteins", "params.options"),
}
# Numbers Snakemake itself fills in.
PLAIN = re.compile(r"threads|resources\.\w+")


def shell_placeholders() -> list[tuple[str, str, str]]:
    """(rule, placeholder, format spec) of every `{...}` in every rule's shell command."""
    found = []
    for path in RULES:
        rule, in_shell = None, False
        for line in path.read_text().splitlines():
            if m := re.match(r"^rule (\w+):", line):
                rule, in_shell = m[1], False
            elif re.match(r"^    shell:\s*$", line):
                in_shell = True
            elif in_shell and not line.startswith("        "):
                in_shell = False
            elif in_shell and not line.strip().startswith("#"):
                for m in re.finditer(r"(?<!\{)\{([^{}]+)\}(?!\})", line):
                    name, _, spec = m[1].partition(":")
                    found.append((rule, name, spec))
    return found


def test_the_scan_sees_every_rule():
    rules = {rule for rule, _, _ in shell_placeholders()}
    assert {"call_group", "align_reads", "annotate_coding", "embed_proteins", "ingest_shard", "write_regions"} <= rules
    assert len(shell_placeholders()) > 100


@pytest.mark.parametrize("rule, name, spec", shell_placeholders(), ids=lambda v: str(v))
def test_every_shell_value_is_quoted(rule, name, spec):
    if PLAIN.fullmatch(name) or (rule, name) in OPTION_STRINGS:
        assert spec == "", f"{rule}: {{{name}}} is built for the shell already"
        return
    assert spec == "q", f"rule {rule}: {{{name}}} reaches the shell unquoted: write {{{name}:q}}"
