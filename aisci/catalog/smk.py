"""Read the rules of a pipeline's Snakefile and rule modules as text: names, lines and directives, for lint."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_RULE = re.compile(r"^(\s*)(rule|checkpoint)\s+(\w+)\s*:")
_DIRECTIVE = re.compile(r"^(\s+)(\w+)\s*:(.*)$")
_LOCALRULES = re.compile(r"^localrules:[ \t]*(.*)$")


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
        return re.search(r"(^|[\s,])gpu\s*=\s*[1-9]", self.text("resources"), re.M) is not None


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _local_rules(lines: list[str]) -> set[str]:
    """Names of ``localrules:`` statements, on one line or on the indented lines below."""
    names: set[str] = set()
    for n, line in enumerate(lines):
        m = _LOCALRULES.match(line)
        if not m:
            continue
        block = [m.group(1)]
        for more in lines[n + 1:]:
            if not more.strip() or not more[0].isspace():
                break
            block.append(more)
        names.update(w.strip() for w in ",".join(block).split(",") if re.fullmatch(r"\w+", w.strip()))
    return names


def read_rules(files: list[Path]) -> list[Rule]:
    """Every rule of ``files`` (a Snakefile and its rule modules), in order, with its directives' text.

    A rule's directives are the lines one indentation level in (whatever its width, tabs included); a directive's
    text runs to the next directive, so a multi-line ``resources:`` or ``shell:`` is read whole, triple-quoted
    strings included (a line of one at column 0 does not end the rule).
    """
    rules: list[Rule] = []
    local: set[str] = set()
    for path in files:
        lines = path.read_text().splitlines()
        local |= _local_rules(lines)
        current: Rule | None = None
        body: int | None = None  # the indentation of the current rule's directives
        directive: str | None = None
        quoted = False  # inside a triple-quoted string
        for n, line in enumerate(lines, 1):
            if not quoted and (m := _RULE.match(line)):
                current, body, directive = Rule(m.group(3), path, n), None, None
                rules.append(current)
                continue
            if current is None:
                continue
            if not quoted and line.strip() and not line.lstrip().startswith("#") and _indent(line) <= _indent(
                    lines[current.line - 1]):
                current = None  # back at the rule's own level: the rule ended
                continue
            m = None if quoted else _DIRECTIVE.match(line)
            if m and (body is None or _indent(line) == body):
                body, directive = _indent(line), m.group(2)
                current.directives[directive] = (n, m.group(3).strip())
            elif directive is not None and line.strip():
                at, text = current.directives[directive]
                current.directives[directive] = (at, f"{text}\n{line.strip()}".strip())
            quoted ^= (line.count('"""') + line.count("'''")) % 2 == 1
    for rule in rules:
        rule.local = rule.name in local
    return rules
