"""Named training recipes: sets of :class:`PseudoLabelSED` parameters.

``"paper"`` is the estimator's defaults, the NEC report as written (the
64-filter ResNet, SGD, a fixed threshold). ``"cpu"`` is the recipe that
localises within half an hour of a 2-core CPU (``docs/recipe.md`` and
``docs/benchmarks.md`` give its measurements): the report's network and loss
at width 16, trained with Adam, warm-up and cosine decay in float32 (bfloat16
autocast and ``torch.compile`` are opt-in: ``docs/recipe.md`` says why), time
shift and frequency masks, the best epoch on validation clips
and per-class thresholds and median filters tuned on them.
``"cpu_teacher"`` (not the report) is ``"cpu"`` whose pseudo labels are drawn
by the recipe's CRNN (:func:`make_teacher`), with eq. 8's weight kept on
the strong frames: the pseudo-label recipe that measured best on real
recordings. Every setting can be overridden.
"""

import functools

import torch

from sklearn_sed.estimator import PseudoLabelSED
from sklearn_sed.networks.crnn import CRNN

__all__ = [
    "RECIPES",
    "TEACHER_SHARED_PARAMS",
    "make_detector",
    "make_teacher",
]

RECIPES = {
    "paper": {},
    "cpu": {
        "n_filters": 16,
        "n_blocks": 2,
        "optimizer": torch.optim.Adam,
        "lr": 2e-3,
        "batch_size": 16,
        "max_epochs": 10,
        "max_iter": 4,
        "delta": 0.1,
        "lr_schedule": "cosine",
        "warmup_epochs": 1,
        "ema_decay": None,
        "time_shift": 0.3,
        "freq_mask": 8,
        "filter_augment": 6.0,
        # float32 and eager on every machine: bfloat16 autocast is 1.8x faster
        # on CPUs with AVX-512 BF16 but its effect on F1 is unmeasured, and
        # torch.compile aborts the interpreter on some CPUs (docs/recipe.md).
        "train_dtype": "float32",
        "compile": False,
        "validation_fraction": 0.15,
        "tune_postprocessing": True,
        "threshold": 0.3,
        "median_filter_sec": 0.5,
    },
}
#: ``"cpu"`` with pseudo labels drawn by the recipe's CRNN (not the report):
#: the combination measured in ``docs/benchmarks.md``, without FilterAugment
#: as measured (with it, the ResNet outscores its CRNN teacher and the
#: teacher's labels stop helping).
RECIPES["cpu_teacher"] = {
    **RECIPES["cpu"],
    "teacher": "crnn",
    "stage2_weighting": "keep_strong",
    "filter_augment": 0.0,
}


#: Parameters that a ``teacher="crnn"`` shorthand passes on to the teacher.
TEACHER_SHARED_PARAMS = (
    "classes",
    "duration",
    "device",
    "random_state",
    "verbose",
    "train_dtype",
    "compile",
    "max_epochs",
    "max_iter",
    "time_shift",
    "freq_mask",
    "mixup",
    "filter_augment",
)


def make_teacher(recipe="cpu", *, n_mels=64, student=None, **params):
    """Build the recipe's CRNN teacher for ``PseudoLabelSED(teacher=...)``.

    The DCASE2019 baseline CRNN (32 filters, 64 GRU units per direction,
    64 mel bands in) trained with the recipe, without stage 2: the model
    whose probabilities draw the pseudo labels of
    ``make_detector(recipe, teacher="crnn")`` (not in the report;
    ``docs/recipe.md`` gives what it measured).

    Parameters
    ----------
    recipe : {"cpu", "cpu_teacher", "paper"}, default="cpu"
        Name of a recipe in :data:`~sklearn_sed.recipes.RECIPES`.
    n_mels : int, default=64
        Mel bands of the feature maps (the CRNN pools them to one).
    student : PseudoLabelSED or None, default=None
        The estimator that the teacher will label for: its settings named
        in :data:`~sklearn_sed.recipes.TEACHER_SHARED_PARAMS` (seed,
        classes, epochs, device, ...) are the teacher's too, below
        ``params``.
    **params
        Estimator parameters that override the recipe's and the
        student's. ``max_epochs`` is the teacher's whole training;
        ``max_iter`` adds its epochs (those of the student's stage 2), so
        that the teacher trains as many epochs as the student.

    Returns
    -------
    teacher : PseudoLabelSED
        An unfitted estimator with ``pseudo_label=False``.

    Examples
    --------
    >>> from sklearn_sed.recipes import make_teacher
    >>> teacher = make_teacher("cpu")
    >>> teacher.module.func.__name__, teacher.pseudo_label
    ('CRNN', False)
    """
    defaults = PseudoLabelSED().get_params()
    shared = {}
    if student is not None:
        student_params = student.get_params(deep=False)
        shared = {k: student_params[k] for k in TEACHER_SHARED_PARAMS}
    merged = {**RECIPES[_check_recipe(recipe)], **shared, **params}
    epochs = merged.get("max_epochs", defaults["max_epochs"]) + merged.pop(
        "max_iter", defaults["max_iter"]
    )
    merged.update(
        module=functools.partial(CRNN, n_filters=32, hidden_size=64, n_mels=n_mels),
        max_epochs=epochs,
        pseudo_label=False,
        teacher=None,
    )
    return make_detector(recipe, **merged)


def _check_recipe(recipe):
    if recipe not in RECIPES:
        raise ValueError(
            f"recipe must be one of {sorted(RECIPES)}. Got {recipe!r} instead."
        )
    return recipe


def make_detector(recipe="cpu", **params):
    """Build a :class:`PseudoLabelSED` from a named recipe.

    Parameters
    ----------
    recipe : {"cpu", "cpu_teacher", "paper"}, default="cpu"
        Name of a recipe in :data:`~sklearn_sed.recipes.RECIPES`.
    **params
        Estimator parameters that override the recipe's. ``teacher="crnn"``
        stands for :func:`~sklearn_sed.recipes.make_teacher` of the same
        recipe, with the settings of
        :data:`~sklearn_sed.recipes.TEACHER_SHARED_PARAMS` given here.

    Returns
    -------
    sed : PseudoLabelSED
        An unfitted estimator.

    Examples
    --------
    >>> from sklearn_sed.recipes import make_detector
    >>> sed = make_detector("cpu", max_epochs=3)
    >>> sed.n_filters, sed.max_epochs, sed.tune_postprocessing
    (16, 3, True)
    """
    merged = {**RECIPES[_check_recipe(recipe)], **params}
    teacher = merged.get("teacher")
    if isinstance(teacher, str) and teacher != "crnn":
        raise ValueError(
            'teacher must be an estimator, None or "crnn" (the recipe\'s '
            f"CRNN, make_teacher). Got {teacher!r} instead."
        )
    if teacher == "crnn":
        merged["teacher"] = None
        sed = PseudoLabelSED(**merged)
        return sed.set_params(teacher=make_teacher(recipe, student=sed))
    return PseudoLabelSED(**merged)
