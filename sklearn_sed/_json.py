"""JSON-ready copies of parameters and fitted values (numpy to Python types).

Shared by the model format (:mod:`sklearn_sed.io`) and the feature
store's settings file (:mod:`sklearn_sed.audio.store`).
"""

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(value):
    """Return ``value`` with numpy arrays and scalars made Python lists and numbers.

    Parameters
    ----------
    value : object
        Nested dicts, lists and tuples of numbers, strings and numpy values.

    Returns
    -------
    value : object
        The same structure, serialisable by :func:`json.dumps` (dict keys
        become strings, tuples lists).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed._json import to_jsonable
    >>> to_jsonable({"a": np.arange(2), 1: (np.float32(0.5),)})
    {'a': [0, 1], '1': [0.5]}
    """
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value
