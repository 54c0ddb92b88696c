"""Converged placement: site descriptions, job profiles, the ILP plan and the cluster simulation."""
