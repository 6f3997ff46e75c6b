"""The ``sklearn-sed`` command line: demo, train, predict, evaluate, ..."""

from sklearn_sed.cli.main import main, run

__all__ = ["main", "run"]
