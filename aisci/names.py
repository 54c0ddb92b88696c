"""One rule for every name that reaches a file name or a command line: samples, callsets, proteins, models."""

from __future__ import annotations

import re

from aisci.errors import InputError

# A letter or digit first (never '-', '.' or '..': those read as options or escape folders), then
# letters, digits, '.', '_' and '-' (no shell metacharacters), at most 64 characters in all (file
# names built from it stay far below NAME_MAX). The schemas' `pattern`s are this same string.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_RE = re.compile(NAME_PATTERN)
NAME_WILDCARD = NAME_PATTERN[1:-1]  # the same rule as a Snakemake wildcard constraint (no anchors)
NAME_MAX = 64


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a valid name, or None when it is."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if len(value) > NAME_MAX:
        return f"is {len(value)} characters long (at most {NAME_MAX})"
    if not NAME_RE.match(value):
        return f"must match {NAME_PATTERN} (a letter or digit first, then letters, digits, '.', '_', '-')"
    return None


def check_name(value: object, what: str) -> str:
    """Return ``value`` when it is a valid name.

    Args:
        value: the name as read.
        what: where it was read, for the message (``samples.tsv line 4: sample``).

    Returns:
        The name.

    Raises:
        InputError: naming ``what`` and the offending value.
    """
    problem = name_problem(value)
    if problem is not None:
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
        raise InputError(f"{what} {shown!r} {problem}")
    return value  # type: ignore[return-value]


# Names already in a store's own metadata (cohort store.json, model manifest.json) were taken by earlier
# versions under a longer limit (models 100 characters, cohort samples unbounded). They keep the same safe
# characters, so they are read as they are, up to 200 characters; new names follow NAME_PATTERN.
STORED_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def check_stored_name(value: object, what: str) -> str:
    """Return a name read from a store's own metadata when it is path-safe (see STORED_NAME_RE).

    Raises:
        InputError: naming ``what`` and the value.
    """
    if isinstance(value, str) and STORED_NAME_RE.match(value):
        return value
    return check_name(value, what)  # raises: says why by the rule for new names
