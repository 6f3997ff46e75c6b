"""``python -m sklearn_sed.cli``: the command line."""

from sklearn_sed.cli.main import run

run()
