import importlib


def test_sed_eval_imports_after_install():
    """Check sed_eval (and dcase_util's pkg_resources) import in this environment."""
    sed_eval = importlib.import_module("sed_eval")
    assert hasattr(sed_eval.sound_event, "EventBasedMetrics")


def test_public_api_exports():
    """Check every name in __all__ exists and the version is set."""
    import sklearn_sed

    for name in sklearn_sed.__all__:
        assert hasattr(sklearn_sed, name), name
    assert sklearn_sed.__version__ != "0.0.0+unknown"
