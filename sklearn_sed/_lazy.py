"""Names of a package loaded on first use (PEP 562), in one place.

``sklearn_sed``, ``sklearn_sed.audio`` and ``sklearn_sed.deploy`` name
their public objects without importing the modules that hold them, so that
``import sklearn_sed`` is cheap and the modules that need no PyTorch import
without it.
"""

import importlib

__all__ = ["lazy_names"]


def lazy_names(package, homes, *, submodules=False):
    """Return a package's ``__getattr__`` and ``__dir__`` for lazy names.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    homes : dict of str to str
        Public name -> the module of ``package`` that holds it (relative:
        ``"audio.features"``).
    submodules : bool, default=False
        Whether any other attribute is tried as a submodule
        (``sklearn_sed.io`` without ``import sklearn_sed.io``), as eager
        imports used to make available.

    Returns
    -------
    getattr_, dir_ : callable
        To assign to the package's ``__getattr__`` and ``__dir__``.
    """
    namespace = vars(importlib.import_module(package))

    def getattr_(name):
        if name in homes:
            value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
            namespace[name] = value  # imported once
            return value
        if submodules:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_():
        return sorted({*namespace, *homes})

    return getattr_, dir_
