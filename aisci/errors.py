"""Error types that the CLI and the workflows turn into clear, user-facing messages."""


class AisciError(Exception):
    """Base class of every error aisci reports to a user (no traceback needed)."""


class InputError(AisciError):
    """Bad user input: a config, sample sheet, reference or reads file that cannot be used.

    The message always names the file and, where known, the line/record and the field.
    """


class ToolError(AisciError):
    """An external tool (minimap2, samtools, bcftools, ...) failed."""
