"""Read the rules of a pipeline's Snakefile and rule modules as text: names, lines and directives, for lint."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_RULE = re.compile(r"^(rule|checkpoint)\s+(\w+)\s*:")
_DIRECTIVE = re.compile(r"^    (\w+)\s*:(.*)$")
_LOCALRULES = re.compile(r"^localrules:\s*\n((?:[ \t]+.*\n?)+)", re.M)


@dataclass
class Rule:
    """One rule as written: where, its directives (name -> line and text) and whether it runs locally."""

    name: str
    file: Path
    line: int
    directives: dict[str, tuple[int, str]] = field(default_factory=dict)
    local: bool = False

    def has(self, directive: str) -> bool:
        return directive in self.directives

    def text(self, directive: str) -> str:
        return self.directives.get(directive, (0, ""))[1]

    @property
    def runs_command(self) -> bool:
        """Whether the rule runs anything (shell, run, script, notebook, wrapper): a target rule does not."""
        return any(d in self.directives for d in ("shell", "run", "script", "notebook", "wrapper"))

    @property
    def gpu(self) -> bool:
        """Whether the rule asks for a GPU (resources gpu=N, N > 0): the GPU resource class."""
        return re.search(r"^\s*gpu\s*=\s*[1-9]", self.text("resources"), re.M) is not None


def read_rules(files: list[Path]) -> list[Rule]:
    """Every rule of ``files`` (a Snakefile and its rule modules), in order, with its directives' text.

    A directive's text runs from its line to the next directive of the rule (4-space indent), so that a
    multi-line ``resources:`` or ``shell:`` is read whole.
    """
    rules: list[Rule] = []
    local: set[str] = set()
    for path in files:
        text = path.read_text()
        for block in _LOCALRULES.findall(text):
            local.update(w.strip() for w in block.replace("\n", ",").split(",") if w.strip())
        current: Rule | None = None
        directive: str | None = None
        for n, line in enumerate(text.splitlines(), 1):
            if m := _RULE.match(line):
                current = Rule(m.group(2), path, n)
                rules.append(current)
                directive = None
            elif current is not None and line and not line[0].isspace() and not line.startswith("#"):
                current = None
            elif current is not None and (m := _DIRECTIVE.match(line)):
                directive = m.group(1)
                current.directives[directive] = (n, m.group(2).strip())
            elif current is not None and directive is not None and line.strip():
                at, body = current.directives[directive]
                current.directives[directive] = (at, f"{body}\n{line.strip()}".strip())
    for rule in rules:
        rule.local = rule.name in local
    return rules
