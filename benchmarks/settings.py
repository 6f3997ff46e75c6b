"""The settings of a Table 1 run: one dataclass, its command line and its detector.

Every script that trains a Table 1 variant takes its settings here, so that
a record holds all of them (:class:`benchmarks.records.Record`) and two runs
compare field by field. The defaults are the ``"cpu"`` recipe's.
"""

import argparse
import dataclasses
import functools

from sklearn_sed import Augment, MeanTeacher, PseudoLabelSchedule, make_detector
from sklearn_sed.datasets import DESED_CLASSES
from sklearn_sed.networks.crnn import CRNN
from sklearn_sed.recipes import RECIPES

__all__ = ["VARIANTS", "Settings"]

#: Table 1's rows: name -> label in the tables.
VARIANTS = {
    "crnn": "CRNN of the DCASE2019 baseline, without its mean teacher",
    "resnet": "ResNet without pseudo label",
    "resnet_pl": "ResNet with pseudo label (proposed)",
}

_CPU = RECIPES["cpu"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a Table 1 run trains: variant, seed, sizes, schedule, augmentation.

    ``epochs`` counts both stages: the pseudo-label variant trains
    ``epochs - max_iter`` epochs of stage 1 and ``max_iter`` of stage 2, the
    others ``epochs`` epochs, so that every variant trains as long.
    ``unlabeled`` adds the unlabelled in-domain clips to the training data;
    ``mean_teacher`` trains with the DCASE2019 baseline's mean teacher
    (:class:`sklearn_sed.MeanTeacher`, its defaults but ``ema_decay``).
    """

    def label(self):
        """The row's name in Table 1.

        The CRNN with the mean teacher and the unlabelled clips is the
        DCASE2019 baseline as it was in 2019, the system the report compares
        with.
        """
        if self.variant == "crnn" and self.mean_teacher and self.unlabeled:
            return (
                f"DCASE2019 baseline: CRNN mean teacher (EMA {self.ema_decay}), "
                "unlabelled clips"
            )
        extra = [
            name
            for name, on in (
                (f"mean teacher (EMA {self.ema_decay})", self.mean_teacher),
                ("unlabelled clips", self.unlabeled),
            )
            if on
        ]
        return VARIANTS[self.variant] + "".join(f", {e}" for e in extra)

    variant: str = "resnet_pl"
    seed: int = 0
    n_filters: int = _CPU["n_filters"]
    n_blocks: int = _CPU["n_blocks"]
    crnn_filters: int = 32
    lr: float = _CPU["lr"]
    batch_size: int = _CPU["batch_size"]
    epochs: int = _CPU["max_epochs"] + _CPU["pseudo_labels"].max_iter
    max_iter: int = _CPU["pseudo_labels"].max_iter
    delta: float = _CPU["pseudo_labels"].delta
    weighting: str = "paper"
    teacher: str = "none"
    time_shift: float = _CPU["augment"].time_shift
    freq_mask: int = _CPU["augment"].freq_mask
    filter_augment: float = _CPU["augment"].filter_augment
    unlabeled: bool = False
    mean_teacher: bool = False
    ema_decay: float = MeanTeacher().ema_decay
    train_dtype: str = "float32"
    compile: str = "auto"
    device: str = "cpu"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(
                f"variant must be one of {sorted(VARIANTS)}; got {self.variant!r}."
            )
        if isinstance(self.compile, str):
            # "auto" (the probe decides), "true" or "false"; records made
            # before "auto" existed hold a bool.
            if self.compile.lower() not in ("auto", "true", "false"):
                raise ValueError(
                    f'compile must be "auto", "true" or "false"; got {self.compile!r}.'
                )
        if self.teacher not in ("none", "crnn"):
            raise ValueError(f'teacher must be "none" or "crnn"; got {self.teacher!r}.')
        if self.unlabeled and not (self.mean_teacher or self.variant == "resnet_pl"):
            raise ValueError(
                "unlabeled clips need pseudo labels (variant resnet_pl) or the "
                "mean teacher (mean_teacher=True)."
            )

    def train_command(self, data="DATA"):
        """The ``sklearn-sed train`` command that trains this run's system.

        Same recipe, network, epochs, schedule, augmentation, dtype and seed
        (``tests/test_benchmarks.py`` builds both and compares their
        parameters). The run keeps its epoch and decoding on a dev split of
        the strong clips, fixed for every run, where the command draws that
        split with the seed (``validation_fraction``), and scores the
        validation soundscapes, which the command leaves to ``sklearn-sed
        predict`` and ``sklearn-sed evaluate``.

        Parameters
        ----------
        data : str, default="DATA"
            The ``benchmarks.make_data`` folder, as it appears in the command.

        Returns
        -------
        command : str
            One shell line.
        """
        # The mean teacher without pseudo labels is the "dcase2019" recipe
        # (its CRNN, or the ResNet with --network resnet).
        dcase2019 = self.mean_teacher and self.variant != "resnet_pl"
        words = ["sklearn-sed train", f"--recipe {'dcase2019' if dcase2019 else 'cpu'}"]
        for kind in ("strong", "weak") + (("unlabeled",) if self.unlabeled else ()):
            words += [
                f"--{kind}-tsv {data}/metadata/{kind}.tsv",
                f"--{kind}-audio-dir {data}/audio/{kind}",
            ]
        sets = []
        if self.variant == "crnn" and self.crnn_filters != 32:
            sets.append(f"'module=crnn(n_filters={self.crnn_filters})'")
        elif self.variant == "crnn" and not dcase2019:
            words.append("--network crnn")
        if self.variant == "resnet" and dcase2019:
            words.append("--network resnet")
        if self.variant != "resnet_pl" and not dcase2019:
            sets += ["pseudo_labels=None", f"max_epochs={self.epochs}"]
        if dcase2019:
            if self.epochs != RECIPES["dcase2019"]["max_epochs"]:
                sets.append(f"max_epochs={self.epochs}")
            if self.ema_decay != RECIPES["dcase2019"]["mean_teacher"].ema_decay:
                sets.append(f"mean_teacher__ema_decay={self.ema_decay}")
        elif self.mean_teacher:
            sets.append(f"'mean_teacher=MeanTeacher(ema_decay={self.ema_decay})'")
        if self.teacher == "crnn":
            words.append("--teacher crnn")
        reference = Settings(
            variant=self.variant,
            seed=self.seed,
            unlabeled=self.unlabeled,
            mean_teacher=self.mean_teacher,
            ema_decay=self.ema_decay,
            crnn_filters=self.crnn_filters,
            teacher=self.teacher,
        )
        flags = {
            "n_filters": "n_filters",
            "n_blocks": "n_blocks",
            "lr": "lr",
            "batch_size": "batch_size",
            "max_iter": "pseudo_labels__max_iter",
            "delta": "pseudo_labels__delta",
            "weighting": "pseudo_labels__weighting",
            "time_shift": "augment__time_shift",
            "freq_mask": "augment__freq_mask",
            "filter_augment": "augment__filter_augment",
            "train_dtype": "train_dtype",
            "device": "device",
        }
        for field, key in flags.items():
            value = getattr(self, field)
            if value != getattr(reference, field):
                if key.startswith("pseudo_labels__") and self.variant != "resnet_pl":
                    continue
                sets.append(f"{key}={value}")
        if self.variant == "resnet_pl" and self.epochs != reference.epochs:
            sets.append(f"max_epochs={self.epochs - self.max_iter}")
        if str(self.compile).lower() != "auto":
            sets.append(f"compile={_compile_value(self.compile)}")
        sets.append(f"random_state={self.seed}")
        words += [f"--set {s}" for s in sets]
        words.append(f"--output {self.variant}-s{self.seed}.sed")
        return " ".join(words)

    def as_dict(self):
        """The settings as a plain dict (what a record holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Settings from a record's dict; unknown fields are refused by name."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown settings {unknown}; known: {sorted(names)}.")
        return cls(**values)

    @classmethod
    def add_arguments(cls, parser, skip=("variant", "seed")):
        """Add a ``--field`` option per field (default: the field's default)."""
        for field in dataclasses.fields(cls):
            if field.name in skip:
                continue
            flag = "--" + field.name.replace("_", "-")
            if field.type in (bool, "bool"):
                parser.add_argument(
                    flag, action=argparse.BooleanOptionalAction, default=field.default
                )
            else:
                kind = {"int": int, "float": float, "str": str}.get(
                    field.type if isinstance(field.type, str) else field.type.__name__
                )
                parser.add_argument(flag, type=kind, default=field.default)
        return parser

    @classmethod
    def from_args(cls, args, **fixed):
        """Settings from parsed options, with ``fixed`` fields (variant, seed)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in vars(args).items() if k in names}
        return cls(**{**values, **fixed})

    def estimator(self, verbose=0, callbacks=()):
        """The unfitted detector of these settings (the ``"cpu"`` recipe's)."""
        pseudo = self.variant == "resnet_pl"
        params = dict(
            classes=list(DESED_CLASSES),
            n_filters=self.n_filters,
            n_blocks=self.n_blocks,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.epochs - self.max_iter if pseudo else self.epochs,
            augment=Augment(
                time_shift=self.time_shift,
                freq_mask=self.freq_mask,
                filter_augment=self.filter_augment,
            ),
            pseudo_labels=PseudoLabelSchedule(
                max_iter=self.max_iter, delta=self.delta, weighting=self.weighting
            )
            if pseudo
            else None,
            mean_teacher=MeanTeacher(ema_decay=self.ema_decay)
            if self.mean_teacher
            else None,
            train_dtype=self.train_dtype,
            compile=_compile_value(self.compile),
            device=self.device,
            random_state=self.seed,
            verbose=verbose,
            callbacks=list(callbacks),
        )
        if self.variant == "crnn":
            params["module"] = functools.partial(
                CRNN, n_filters=self.crnn_filters, hidden_size=64
            )
        sed = make_detector("cpu", **params)
        if pseudo and self.teacher == "crnn":
            # The CRNN row of the same seed, fitted inside this fit.
            crnn = dataclasses.replace(self, variant="crnn", teacher="none")
            sed.pseudo_labels.set_params(teacher=crnn.estimator(verbose))
        return sed


def _compile_value(value):
    """The estimator's ``compile`` for a settings value (bool or text)."""
    if isinstance(value, bool):
        return value
    return {"auto": "auto", "true": True, "false": False}[value.lower()]
