"""Germline small variants: reference preparation, read checks, alignment, calling, evaluation, sequence context."""
