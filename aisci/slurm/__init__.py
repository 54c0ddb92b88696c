"""Slurm operations: site profiles, job accounting (sacct), utilisation reports and the run history."""
