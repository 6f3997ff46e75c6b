"""Sphinx configuration of the API reference (built from the docstrings).

    pip install -e ".[docs]"
    sphinx-build -W --keep-going -n -b html docs/api docs/_build/api

``-W -n`` makes every warning, a broken cross-reference among them, an error;
``tests/test_api_docs.py`` runs the same build.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(__file__, "..", "..", "..")))

project = "sklearn-sed"
author = "sklearn-sed developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]
autosummary_generate = True
templates_path = ["_templates"]
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
html_theme = "alabaster"
exclude_patterns = ["_build", "generated/*.tmp"]
# Broken references inside the package are errors (-n -W); references to
# other projects' objects are not checked (no network, hence no intersphinx).
nitpicky = True
nitpick_ignore_regex = [
    (
        r"py:.*",
        r"(torch|sklearn|numpy|np|skorch|joblib|librosa|matplotlib|"
        r"sed_eval|sed_scores_eval|scipy|soundfile|pandas|dask|os|pathlib)(\..*)?",
    ),
    (
        r"py:.*",
        r"(array-like|ndarray|callable|optional|default|Tensor|Figure|"
        r"Path|PathLike|RandomState|Generator|Memory)",
    ),
]


def _skip_foreign_request_methods(app, what, name, obj, skip, options):
    """Leave out the ``set_*_request`` methods scikit-learn generates.

    They document scikit-learn's metadata routing with references to its
    own user guide; our own (``SEDScorer.set_score_request``) stay.
    """
    if name.startswith("set_") and name.endswith("_request"):
        owner = getattr(obj, "__module__", "") or ""
        if not owner.startswith("sklearn_sed"):
            return True
    return skip


def setup(app):
    """Connect the member filter."""
    app.connect("autodoc-skip-member", _skip_foreign_request_methods)
