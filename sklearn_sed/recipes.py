"""Named training recipes: sets of :class:`PseudoLabelSED` parameters.

``"paper"`` is the estimator's defaults, the NEC report as written (the
64-filter ResNet, SGD, a fixed threshold). ``"cpu"`` is the recipe that
localises within half an hour of a 2-core CPU (``docs/recipe.md`` and
``docs/benchmarks.md`` give its measurements): the report's network and loss
at width 16, trained with Adam, warm-up and cosine decay in float32 (bfloat16
autocast is opt-in: it lost 1.1 points of event F1 on one of Table 1's
rows, ``docs/recipe.md``), time
shift and frequency masks, the best epoch on validation clips
and per-class thresholds and median filters tuned on them.
``"cpu_teacher"`` (not the report) is ``"cpu"`` whose pseudo labels are drawn
by the recipe's CRNN (:func:`make_teacher`), with eq. 8's weight kept on
the strong frames. ``"dcase2019"`` (not the report) is the DCASE2019 Task 4
baseline as it was trained in 2019: its CRNN with the mean teacher, which
needs unlabelled clips, trained with ``"cpu"``'s optimiser, augmentation and
decoding: the system that measured best on the benchmark's validation
soundscapes. Every setting can be overridden, and ``network=`` swaps the
network of any recipe (:func:`make_detector`).
:data:`RECIPE_CARDS` says what each recipe measured, costs and needs.

Every recipe trains with ``compile="auto"``: through ``torch.compile`` only
where the training probe
(:func:`~sklearn_sed.training.fast_path.choose_training_path`) ran the fit's
exact training step compiled in a child process, in agreement with
eager float32 and faster; eagerly everywhere else.
"""

import dataclasses
import functools

import torch
from sklearn.base import clone

from sklearn_sed.decoding.decode import Decoder
from sklearn_sed.estimator import PseudoLabelSED
from sklearn_sed.networks.crnn import CRNN
from sklearn_sed.networks.registry import network_factory
from sklearn_sed.training.augment import Augment
from sklearn_sed.training.callbacks import MeanTeacher, WarmupCosine
from sklearn_sed.training.pseudo_labels import PseudoLabelSchedule

__all__ = [
    "RECIPES",
    "RECIPE_CARDS",
    "RecipeCard",
    "TEACHER_SHARED_PARAMS",
    "make_detector",
    "make_teacher",
]

RECIPES = {
    # The report as written, its parameter objects spelled out so that
    # nested settings (``pseudo_labels__delta``) reach them; compiled where
    # the training probe proves it safe and faster.
    "paper": {
        "pseudo_labels": PseudoLabelSchedule(),
        "decoder": Decoder(),
        "compile": "auto",
    },
    "cpu": {
        "n_filters": 16,
        "n_blocks": 2,
        "optimizer": torch.optim.Adam,
        "lr": 2e-3,
        "batch_size": 16,
        "max_epochs": 10,
        "lr_schedule": WarmupCosine(warmup_epochs=1),
        "augment": Augment(time_shift=0.3, freq_mask=8, filter_augment=6.0),
        "pseudo_labels": PseudoLabelSchedule(max_iter=4, delta=0.1),
        # float32: bfloat16 autocast trains 1.6-1.9x faster on CPUs with
        # AVX-512 BF16, but scored 1.1 points of event F1 below float32 on
        # Table 1's ResNet row (3 seeds each; docs/benchmarks.md), outside
        # the 0.5 point a default may lose; train_dtype="auto" is opt-in.
        # Compiled only where the training probe ran this exact step in a
        # child process, safely and faster (training.fast_path).
        "train_dtype": "float32",
        "compile": "auto",
        "validation_fraction": 0.15,
        "decoder": Decoder(threshold=0.3, median_filter_sec=0.5, tune=True),
    },
}
#: ``"cpu"`` with pseudo labels drawn by the recipe's CRNN (not the report):
#: the combination measured in ``docs/benchmarks.md``, without FilterAugment
#: as measured (with it, the ResNet outscores its CRNN teacher and the
#: teacher's labels stop helping).
RECIPES["cpu_teacher"] = {
    **RECIPES["cpu"],
    # The CRNN teacher is built by make_detector (teacher="crnn").
    "pseudo_labels": PseudoLabelSchedule(
        max_iter=4, delta=0.1, weighting="keep_strong", teacher="crnn"
    ),
    "augment": Augment(time_shift=0.3, freq_mask=8),
}
#: The DCASE2019 Task 4 baseline as trained in 2019: its CRNN (32 filters,
#: 64 GRU units) with the mean teacher on the unlabelled clips, with
#: ``"cpu"``'s optimiser, augmentation, dev split and tuned decoding, and the
#: EMA decay that fits a CPU's number of batches (0.99; the baseline's 0.999
#: averages over more batches than 14 epochs of 1,000 clips hold:
#: ``MeanTeacher.check_horizon``). 14 epochs: the budget of ``"cpu"``
#: (10 + 4 pseudo-label iterations).
RECIPES["dcase2019"] = {
    **RECIPES["cpu"],
    "module": network_factory("crnn"),
    "max_epochs": 14,
    "pseudo_labels": None,
    "mean_teacher": MeanTeacher(ema_decay=0.99),
}


@dataclasses.dataclass(frozen=True)
class RecipeCard:
    """What a recipe is, what it measured, what it costs and what it needs.

    The figures are measurements of ``docs/benchmarks.md`` (the section
    named in ``source``), quoted with their machine; ``sklearn-sed train
    --help`` and ``docs/recipe.md`` print them.

    Attributes
    ----------
    summary : str
        What the recipe trains, in a line.
    event_f1 : str
        Event-based macro F1 on the benchmark's validation soundscapes
        (3-seed mean), or why it was not measured.
    minutes : str
        Training minutes on the benchmark's clips, and the machine.
    needs_unlabeled : bool
        Whether the recipe needs unlabelled clips (its mean teacher learns
        from them; ``sklearn-sed train`` refuses it without
        ``--unlabeled-tsv``).
    source : str
        The section of ``docs/benchmarks.md`` that holds the measurement.
    """

    summary: str
    event_f1: str
    minutes: str
    needs_unlabeled: bool = False
    source: str = ""

    def help_line(self, name):
        """Return the recipe's one-paragraph description for ``--help``."""
        needs = (
            "needs --unlabeled-tsv" if self.needs_unlabeled else "no unlabelled clips"
        )
        return (
            f"'{name}': {self.summary}; event F1 {self.event_f1}; "
            f"{self.minutes}; {needs}"
        )


#: One card per recipe of :data:`~sklearn_sed.recipes.RECIPES`.
RECIPE_CARDS = {
    "cpu": RecipeCard(
        summary="the report's method: ResNet (width 16 x 2 blocks) with "
        "class-frame pseudo labels, Adam, tuned per-class decoding",
        event_f1="19.8 % (3 seeds; 19.4 % without pseudo labels)",
        minutes="for 1,000 clips x 14 epochs on 2 cores: 24-27 min in float32, "
        "14-17 min with train_dtype='bfloat16' (both compiled) on an AMD EPYC "
        "with AVX-512 BF16; on one with AVX2 only, compiled float32 at "
        "3.7 clips/s: about 62 min of training steps",
        source="Table 1 on real recordings, 2-core CPU",
    ),
    "cpu_teacher": RecipeCard(
        summary="'cpu' whose pseudo labels are drawn by a CRNN trained first "
        "(not the report), without FilterAugment",
        event_f1="16.1 % (3 seeds, measured before FilterAugment; 'cpu' "
        "then scored 15.2 %)",
        minutes="about twice 'cpu' (the CRNN trains first)",
        source="The levers tried",
    ),
    "dcase2019": RecipeCard(
        summary="the DCASE2019 baseline: CRNN (32 filters) with the mean "
        "teacher (EMA 0.99) on unlabelled clips, 14 epochs",
        event_f1="26.1 % (3 seeds; the best system measured)",
        minutes="52 min for 1,000 labelled + 1,000 unlabelled clips x 14 "
        "epochs on a 2-core AMD EPYC with AVX-512 BF16 (float32 eager)",
        needs_unlabeled=True,
        source="Unlabelled clips: the DCASE2019 baseline's mean teacher",
    ),
    "paper": RecipeCard(
        summary="the report as written: ResNet 64 filters, SGD, fixed "
        "threshold (a GPU job)",
        event_f1="not measured as written (at width 64 with the 'cpu' "
        "optimiser on an H100: 13.5 %)",
        minutes="about 1 min for 1,000 clips x 14 epochs on an H100 "
        "(bfloat16, width 64)",
        source="Table 1 at the report's size on an accelerator",
    ),
}


#: Parameters that a ``teacher="crnn"`` shorthand passes on to the teacher
#: (with the student's ``pseudo_labels.max_iter``, added to its epochs).
TEACHER_SHARED_PARAMS = (
    "classes",
    "duration",
    "device",
    "random_state",
    "verbose",
    "train_dtype",
    "compile",
    "max_epochs",
    "augment",
)


def _fresh(params):
    """Copy a recipe's parameters: parameter objects are cloned, not shared."""
    return {k: clone(v) if hasattr(v, "get_params") else v for k, v in params.items()}


def make_teacher(recipe="cpu", *, n_mels=64, student=None, **params):
    """Build the recipe's CRNN teacher for ``PseudoLabelSED(teacher=...)``.

    The DCASE2019 baseline CRNN (32 filters, 64 GRU units per direction,
    64 mel bands in) trained with the recipe, without stage 2: the model
    whose probabilities draw the pseudo labels of
    ``"cpu_teacher"`` (``PseudoLabelSchedule(teacher="crnn")`` given to
    :func:`~sklearn_sed.make_detector`; not in the report;
    ``docs/recipe.md`` gives what it measured).

    Parameters
    ----------
    recipe : {"cpu", "cpu_teacher", "dcase2019", "paper"}, default="cpu"
        Name of a recipe in :data:`~sklearn_sed.recipes.RECIPES`.
    n_mels : int, default=64
        Mel bands of the feature maps (the CRNN pools them to one).
    student : PseudoLabelSED or None, default=None
        The estimator that the teacher will label for: its settings named
        in :data:`~sklearn_sed.recipes.TEACHER_SHARED_PARAMS` (seed,
        classes, epochs, device, ...) are the teacher's too, below
        ``params``.
    **params
        Estimator parameters that override the recipe's and the student's
        (nested ones, such as ``augment__freq_mask``, too). The teacher
        trains ``max_epochs`` plus the student's ``pseudo_labels.max_iter``
        epochs: as many as the student.

    Returns
    -------
    teacher : PseudoLabelSED
        An unfitted estimator with ``pseudo_labels=None``.

    Examples
    --------
    >>> from sklearn_sed.recipes import make_teacher
    >>> teacher = make_teacher("cpu")
    >>> teacher.module.func.__name__, teacher.pseudo_labels
    ('CRNN', None)
    """
    recipe = _check_recipe(recipe)
    merged = _fresh(RECIPES[recipe])
    if student is not None:
        student_params = student.get_params(deep=False)
        merged.update(_fresh({k: student_params[k] for k in TEACHER_SHARED_PARAMS}))
        schedule = student_params["pseudo_labels"]
    else:
        schedule = merged.get("pseudo_labels")
    max_iter = (
        PseudoLabelSchedule().max_iter
        if isinstance(schedule, str)
        else getattr(schedule, "max_iter", 0)
    )
    nested = {k: params.pop(k) for k in list(params) if "__" in k}
    merged.update(params)
    merged.update(
        module=functools.partial(CRNN, n_filters=32, hidden_size=64, n_mels=n_mels),
        max_epochs=merged.get("max_epochs", PseudoLabelSED().max_epochs) + max_iter,
        pseudo_labels=None,
    )
    return PseudoLabelSED(**merged).set_params(**nested)


def _check_recipe(recipe):
    if recipe not in RECIPES:
        raise ValueError(
            f"recipe must be one of {sorted(RECIPES)}. Got {recipe!r} instead."
        )
    return recipe


def make_detector(recipe="cpu", *, network=None, **params):
    """Build a :class:`PseudoLabelSED` from a named recipe.

    Parameters
    ----------
    recipe : {"cpu", "cpu_teacher", "dcase2019", "paper"}, default="cpu"
        Name of a recipe in :data:`~sklearn_sed.recipes.RECIPES`;
        :data:`~sklearn_sed.recipes.RECIPE_CARDS` says what each measured.
    network : {"resnet", "crnn"} or None, default=None
        The network trained, instead of the recipe's
        (:func:`~sklearn_sed.networks.network_factory`): ``"resnet"`` is the
        report's ResNet at the recipe's ``n_filters`` and ``n_blocks``,
        ``"crnn"`` the DCASE2019 baseline's CRNN. None keeps the recipe's.
        Give either ``network`` or ``module``, not both.
    **params
        Estimator parameters that override the recipe's; nested ones
        (``pseudo_labels__max_iter=2``, ``decoder__threshold=0.4``) set a
        field of the recipe's parameter objects. A ``pseudo_labels`` whose
        ``teacher`` is ``"crnn"`` (as in ``"cpu_teacher"``) gets
        :func:`~sklearn_sed.recipes.make_teacher` of the same recipe, with
        the settings of :data:`~sklearn_sed.recipes.TEACHER_SHARED_PARAMS`
        given here.

    Returns
    -------
    sed : PseudoLabelSED
        An unfitted estimator.

    Examples
    --------
    >>> from sklearn_sed.recipes import make_detector
    >>> sed = make_detector("cpu", max_epochs=3, decoder__threshold=0.4)
    >>> sed.n_filters, sed.max_epochs, sed.decoder.threshold, sed.decoder.tune
    (16, 3, 0.4, True)
    >>> make_detector("cpu", network="crnn").module.func.__name__
    'CRNN'
    """
    merged = _fresh(RECIPES[_check_recipe(recipe)])
    if network is not None:
        if "module" in params:
            raise ValueError(
                "make_detector got both network= and module=, which both choose "
                "the network. Give one of them."
            )
        params["module"] = network_factory(network)
    nested = {k: params.pop(k) for k in list(params) if "__" in k}
    merged.update(params)
    sed = PseudoLabelSED(**merged).set_params(**nested)
    schedule = sed.pseudo_labels
    teacher = getattr(schedule, "teacher", None)
    if isinstance(teacher, str):
        if teacher != "crnn":
            raise ValueError(
                'pseudo_labels.teacher must be an estimator, None or "crnn" (the '
                f"recipe's CRNN, make_teacher). Got {teacher!r} instead."
            )
        schedule.set_params(teacher=None)
        schedule.set_params(teacher=make_teacher(recipe, student=sed))
    return sed
