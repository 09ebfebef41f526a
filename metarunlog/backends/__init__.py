"""Execution backends: local worker pool and Slurm job arrays, behind one interface."""
