"""metarunlog: git-anchored experiment folders, hyperparameter batches, runs and reports."""

__version__ = "2.0.0"
