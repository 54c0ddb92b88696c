"""aisci.catalog.smk: rules read as text whatever their indentation, local rules on one line or several, directives
across triple-quoted strings."""

from __future__ import annotations

from aisci.catalog.smk import read_rules

SMK = '''localrules: all, write_x

rule all:
\tinput:
\t\t"a"

rule write_x:
  output: "x"
  shell:
    """
echo hi
curl http://x
"""

rule gpu_job:
    output:
        "y",
    resources:
        mem_mb=1, gpu=1,
    shell: "z"


localrules:
    gpu_job,
'''


def test_rules_directives_and_local_rules(tmp_path):
    path = tmp_path / "x.smk"
    path.write_text(SMK)
    rules = {r.name: r for r in read_rules([path])}
    assert list(rules) == ["all", "write_x", "gpu_job"]
    assert all(r.local for r in rules.values())
    assert rules["all"].directives == {"input": (4, '"a"')} and not rules["all"].runs_command
    assert rules["write_x"].text("shell").splitlines()[2] == "curl http://x"  # the column-0 line stays in the rule
    assert rules["write_x"].directives["output"] == (8, '"x"')
    assert rules["gpu_job"].gpu and not rules["write_x"].gpu and rules["gpu_job"].line == 15
    assert rules["gpu_job"].text("resources") == "mem_mb=1, gpu=1,"
