"""Cohort store and batch reanalysis."""
