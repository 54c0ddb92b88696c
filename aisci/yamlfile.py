"""YAML for user files: safe types only, no aliases (a 'billion laughs' document is refused at once)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml

from aisci.errors import InputError

# More nodes than any config, site or manifest needs; a document past it is refused, not expanded.
MAX_NODES = 100_000
MAX_DEPTH = 100  # nesting levels: validators recurse, and Python stops at ~1,000


class _NoAliasLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases: a user file never needs them, and a chain of
    aliases expands exponentially when a validator or deepcopy walks the result."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102 - PyYAML hook
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in aisci files", event.start_mark
            )
        return super().compose_node(parent, index)


def loads(text: str, source: str) -> Any:
    """Parse YAML text from a user file.

    Args:
        text: the document.
        source: the file's name, for messages.

    Returns:
        The parsed value (None for an empty document).

    Raises:
        InputError: not valid YAML, uses an alias, or fails `check_plain`; the message names the source and the line.
    """
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source} line {mark.line + 1}" if mark is not None else source
        raise InputError(f"{where}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({exc})".replace("\n", " ")) from None
    except RecursionError:
        raise InputError(f"{source}: nested more than {MAX_DEPTH} levels deep: not a config file") from None
    check_plain(data, source)
    return data


def load(path: str | os.PathLike[str], source: str | None = None) -> Any:
    """Read and parse a user YAML file (UTF-8).

    Raises:
        InputError: unreadable, not UTF-8, not valid YAML, or uses an alias.
    """
    path = Path(path)
    source = source or str(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror})") from None
    return loads(text, source)


def check_plain(data: Any, source: str) -> None:
    """Refuse a parsed document with shared containers (aliases), too many nodes, or NaN/infinity.

    Snakemake parses config files itself; this catches what its loader let through before any
    validator walks the tree.

    Raises:
        InputError: naming the source and the key path.
    """
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("", data, 0)]
    nodes = 0
    while stack:
        where, value, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise InputError(f"{source}: more than {MAX_NODES:,} values: not a config file")
        if depth > MAX_DEPTH:
            raise InputError(f"{source}: nested more than {MAX_DEPTH} levels deep: not a config file")
        if isinstance(value, float) and not math.isfinite(value):
            raise InputError(f"{source}: {where or 'value'}: {value!r} is not a finite number")
        if isinstance(value, (dict, list)):
            if id(value) in seen:
                raise InputError(
                    f"{source}: {where or 'value'}: YAML aliases (&anchor / *alias) are not allowed"
                )
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, sub in items:
                stack.append((f"{where}.{key}" if where else str(key), sub, depth + 1))
