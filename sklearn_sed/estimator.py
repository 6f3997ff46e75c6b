"""PseudoLabelSED: the NEC DCASE2019 system as a scikit-learn estimator.

Two-stage training (section 3 of the report): stage 1 trains the network on
the given labels (eq. 6); stage 2 repeats ``pseudo_labels.max_iter`` times
(:class:`~sklearn_sed.training.pseudo_labels.PseudoLabelSchedule`): weak clips whose
clip prediction, binarized at ``theta_i`` (eq. 5), equals their weak label get
class-frame pseudo labels (eq. 4), and the network is trained on eq. 9.
Modelled on :class:`sklearn.semi_supervised.SelfTrainingClassifier`.
"""

import dataclasses
import math
import numbers
import os
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context, clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_memory

from sklearn_sed._device import check_device
from sklearn_sed._validation import (
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_LR,
    check_class_names,
    check_features,
    check_n_clips,
    check_per_class,
)
from sklearn_sed.audio.features import MAX_DURATION_SEC
from sklearn_sed.decoding.decode import Decoder, Decoding
from sklearn_sed.decoding.tuning import (
    FINAL_MEDIAN_FILTER_GRID,
    LOW_RATIO_GRID,
    THRESHOLD_GRID,
    tune_postprocessing,
)
from sklearn_sed.labels import (
    KIND_UNLABELED,
    KIND_WEAK,
    check_events,
    encode_targets,
    encode_weak_labels,
    is_combined,
    split_labels,
    weak_labels_of,
)
from sklearn_sed.metrics.scoring import (
    classes_without_events_quietly,
    event_f1_scorer,
    segment_f1_scorer,
    take_clips,
)
from sklearn_sed.networks import check_module_output
from sklearn_sed.training.augment import Augment
from sklearn_sed.training.build import (
    MAX_BLOCKS,
    MAX_FILTERS,
    OPTIMIZERS,
    build_module,
    hash_rows,
    make_training_net,
)
from sklearn_sed.training.callbacks import (
    BestWeights,
    MeanTeacher,
    PseudoLabeling,
    ValidationScoring,
    WarmupCosine,
    evaluation_module,
)
from sklearn_sed.training.losses import KIND_STRONG, paper_class_weights
from sklearn_sed.training.net import (
    bare_module,
    device_type,
    drop_compiled,
    load_module_state,
    module_state,
)
from sklearn_sed.training.net import forward_probabilities as _forward
from sklearn_sed.training.pseudo_labels import PseudoLabelSchedule

__all__ = ["POSTPROCESSING_PARAMS", "PseudoLabelSED"]

#: Parameters that change only prediction: never retrain for them, except
#: ``decoder`` when validation clips choose the best epoch (each epoch is
#: scored by decoding its events with it).
POSTPROCESSING_PARAMS = frozenset(
    {"decoder", "verbose", "checkpoint_dir", "inference_dtype", "predict_batch_size"}
)


class PseudoLabelSED(BaseEstimator):
    """Sound event detector trained with class-frame pseudo labels (NEC, DCASE2019).

    Parameters
    ----------
    module : torch.nn.Module class, factory or instance, default=None
        Network returning ``(frame_probs, clip_probs)``; None is
        :class:`~sklearn_sed.networks.ResNetSED`. A class or factory (e.g.
        ``functools.partial(CRNN, n_filters=32)``) is called with
        ``n_classes=len(classes_)``; an instance is copied.
    n_filters : int, default=64
        Width of the default ResNet (paper: 64).
    n_blocks : int, default=2
        Basic blocks per residual stage of the default ResNet (paper silent).
    classes : array-like of shape (n_classes,), default=None
        Fixed class list; learnt from the labels (sorted) when None.
    class_weight : "paper", None or array-like of shape (n_classes,), default="paper"
        ``w_c`` of eq. 1: ``"paper"`` computes eq. 2 from the training labels;
        None gives every class ``1 / n_classes`` (the same loss scale).
    optimizer : torch optimizer class or {"sgd", "adam", "adamw", "rmsprop"}, \
            default=torch.optim.SGD
        The report uses stochastic gradient descent (with a momentum of 0.9
        here; ``net_params={"optimizer__momentum": ...}`` sets another, as
        any optimizer argument). A name stands for the ``torch.optim`` class
        of that name (as ``--set optimizer=adam`` on the command line).
    lr : float, default=0.05
        Learning rate (paper silent).
    batch_size : int, default=32
        Clips per batch (paper silent).
    max_epochs : int, default=20
        Epochs of stage 1 (paper silent).
    lr_schedule : WarmupCosine or None, default=None
        None keeps ``lr`` constant (the report says nothing of a schedule);
        a :class:`~sklearn_sed.training.callbacks.WarmupCosine` warms up
        linearly and decays to 0 along a cosine over all epochs of both
        stages, batch by batch.
    augment : Augment or None, default=None
        Training augmentation (not in the report): time shift, frequency
        masks and FilterAugment, label-consistent
        (:class:`~sklearn_sed.training.augment.Augment`); None: none.
    mean_teacher : MeanTeacher or None, default=None
        The DCASE2019 baseline's mean teacher (not in the NEC report;
        :class:`~sklearn_sed.training.callbacks.MeanTeacher`): an exponential
        moving average of the weights, a consistency cost between it and the
        network on every clip (unlabelled ones included), and the average as
        the model that predicts. None: plain training, as in the report.
    pseudo_labels : PseudoLabelSchedule, "paper" or None, default="paper"
        Stage 2 (:class:`~sklearn_sed.training.pseudo_labels.PseudoLabelSchedule`:
        iterations, the threshold schedule of eq. 5, the weighting of eq. 10,
        an optional teacher). "paper" is ``PseudoLabelSchedule()``; None
        skips stage 2: the report's "ResNet without pseudo label".
    train_dtype : {"float32", "bfloat16", "auto"}, default="float32"
        Precision of the training forward pass: "bfloat16" trains under
        ``torch.autocast`` (weights, optimizer and loss stay float32): 1.9x
        to 2.4x the clips/s of float32 on a CPU with AVX-512 BF16
        (``docs/benchmarks.md``), and faster on recent GPUs; emulated, hence
        slower, on CPUs without bfloat16 instructions. "auto" trains
        bfloat16 where the device computes it natively and the training
        probe finds it faster and in agreement with float32 (see
        ``compile``), else float32. No recipe sets "bfloat16" or "auto":
        on Table 1's ResNet row bfloat16 scored 1.1 points of event F1
        below float32 (3 seeds each; ``docs/benchmarks.md``). Pseudo
        labelling and validation always run in float32.
    compile : bool or "auto", default=False
        Train the network through ``torch.compile`` (skorch's ``compile``,
        static shapes; the loss is not compiled): 2.2x the clips/s of eager
        float32 at width 16 on a 2-core AMD EPYC (``benchmarks/throughput.py``).
        Needs a C++ compiler on CPUs (Inductor). Only full training batches
        run compiled; a partial last batch, prediction, pseudo labelling and
        validation run the plain network, and the fitted estimator keeps it
        (model files and pickles are those of an uncompiled fit).
        "auto" (the recipes' default) compiles only where the training probe
        (:func:`~sklearn_sed.training.fast_path.choose_training_path`) ran
        this network's exact training step compiled in a child process,
        found its losses and
        gradients equal to eager float32's within tolerance, and faster;
        an abort, a time-out or a mismatch there trains eagerly, with a
        warning naming it. The verdict is cached per machine and shape.
        True compiles without a probe: **it can abort the interpreter**
        (Inductor's compiled backward corrupted the heap on AMD EPYC CPUs at
        2 to 12 filters with torch 2.13, PyTorch issue 181618); on a CPU, a
        network with a convolution of fewer than 8 channels then trains
        eagerly with a warning.
    validation_fraction : float or None, default=None
        Fraction of the strongly labelled clips held out as validation data
        when ``fit`` gets no ``X_val``; None holds out nothing.
    decoder : Decoder or None, default=None
        How events are decoded from frame probabilities: thresholds, median
        filters, hysteresis, order, and whether they are tuned per class on
        the validation clips (:class:`~sklearn_sed.decoding.decode.Decoder`);
        None is ``Decoder()``. It never needs retraining, unless validation
        clips choose the best epoch by its events.
    duration : float, default=10.0
        Clip length in seconds, for event times.
    device : str, default="cpu"
        Torch device for training and inference.
    inference_dtype : {"float32", "bfloat16"}, default="float32"
        Precision of prediction (never of training nor of pseudo labelling):
        "bfloat16" runs the forward pass under ``torch.autocast``, which on a
        CPU with AVX-512 BF16 (or a recent GPU) is about twice as fast. Check
        on your validation data that the event F1 holds: ``benchmarks/speed.py``
        measures the difference (see ``docs/benchmarks.md``).
    predict_batch_size : int or None, default=None
        Clips per forward pass in prediction. None means 1 on a CPU, where one
        clip at a time keeps the activations in cache and is fastest (1.3x for
        the paper-size network and 2.6x for a width-8 one against 32 clips, on
        2 cores), and ``batch_size`` on other devices.
    checkpoint_dir : str or None, default=None
        Folder for a checkpoint written after every epoch of both stages;
        ``fit`` resumes from it when it exists and matches the training
        (parameters and data). See
        :class:`~sklearn_sed.training.checkpoints.TrainingCheckpoint`.
    memory : str, joblib.Memory or None, default=None
        Cache of trained networks keyed on the training parameters and data,
        and of frame and clip probabilities keyed on the weights, the features
        and the inference settings: refitting and scoring with other
        post-processing parameters (e.g. in ``GridSearchCV``) then costs no
        training and no forward pass.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and batch order.
    verbose : int, default=0
        0: silent. 1: skorch's per-epoch table. 2 and up: also a progress bar
        over the batches of every epoch (skorch's ``ProgressBar``, on stderr).
    callbacks : list of skorch callbacks, default=None
        Extra callbacks for the skorch net.
    accelerator : accelerate.Accelerator or None, default=None
        Train data-parallel across processes (several GPUs or machines)
        through skorch's Hugging Face Accelerate integration
        (``skorch.hf.AccelerateMixin``; ``pip install
        "sklearn-sed[accelerate]"``). Launch the same script in every
        process (``accelerate launch`` or ``torchrun``); each process trains
        on its share of every batch of ``batch_size`` clips, so the global
        batch is ``batch_size`` times the number of processes, and the
        pseudo labels, validation scores and predictions are computed on
        all clips in every process. The accelerator places the weights
        (``device`` is ignored in training). See ``docs/user_guide.md``.
    net_params : dict or None, default=None
        Extra :class:`skorch.NeuralNet` parameters for the training net,
        e.g. ``{"iterator_train__num_workers": 4}`` or
        ``{"optimizer__weight_decay": 1e-4}``; they override the estimator's
        own (``iterator_train__shuffle`` and SGD's momentum included).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    net_ : SEDNet
        The trained skorch net.
    class_weight_ : ndarray of shape (n_classes,)
        ``w_c`` used in training.
    n_mels_in_ : int
        Mel bands of the training features.
    n_frames_in_ : int
        Input frames per clip at fit time.
    n_frames_out_ : int
        Output frames per clip (128 for 1024 input frames).
    n_iter_ : int
        Pseudo-labelling iterations run.
    teacher_ : estimator or None
        The fitted clone of ``pseudo_labels.teacher`` that drew the pseudo
        labels; None
        without a teacher or when stage 2 does not run.
    pseudo_label_history_ : list of dict
        Per iteration: ``iteration``, ``threshold`` (theta_i) and ``n_pseudo``
        (M_p, weak clips that got pseudo labels) out of ``n_weak``.
    n_strong_, n_weak_ : int
        ``M_s`` and ``M_w``.
    training_path_ : TrainingPath
        The training set-up the fit used (``train_dtype``, ``compile``) and
        why: "set explicitly", or what the probe of ``"auto"`` found
        (:class:`~sklearn_sed.training.fast_path.TrainingPath`). Not kept in
        model files.
    n_unlabeled_ : int
        Training clips without any label (``y_weak`` of ``-1``).
    best_epoch_ : int or None
        With validation data, the epoch (1-based, over both stages) whose
        weights were kept (best validation event F1); None otherwise.
    threshold_ : ndarray of shape (n_classes,)
        Decision thresholds used by ``predict`` and ``predict_events``:
        tuned per class when ``decoder.tune``, else ``decoder.threshold``.
    median_filter_sec_ : ndarray of shape (n_classes,)
        Median-filter lengths used by ``predict_events``, likewise.
    low_threshold_ : ndarray of shape (n_classes,)
        Hysteresis low thresholds used by ``predict_events``, likewise
        (``low_threshold``, or ``threshold_`` where it is None); equal to
        ``threshold_`` for a class decoded by single thresholding.
    validation_f1_ : float or None
        Validation event F1 of the kept weights at ``threshold_`` and
        ``median_filter_sec_``; None without validation data.

    See Also
    --------
    LogMelExtractor : Makes the feature maps this estimator takes.
    sklearn.semi_supervised.SelfTrainingClassifier : The model for this design.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_sed import PseudoLabelSED
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((4, 32, 8), dtype=np.float32)
    >>> y_weak = [["a"], ["b"], ["a", "b"], []]
    >>> y_strong = [[(0.0, 0.5, "a")], None, None, []]
    >>> from sklearn_sed import PseudoLabelSchedule
    >>> sed = PseudoLabelSED(n_filters=2, n_blocks=1, max_epochs=1, duration=1.0,
    ...                      pseudo_labels=PseudoLabelSchedule(max_iter=1),
    ...                      random_state=0)
    >>> sed.fit(X, y_weak, y_strong).predict_frames(X).shape
    (4, 4, 2)
    """

    #: The fitted state besides the network's weights and history, in one
    #: place: the safe model format writes and reads exactly these.
    FITTED_ATTRIBUTES = (
        "classes_",
        "class_weight_",
        "n_mels_in_",
        "n_frames_in_",
        "n_frames_out_",
        "n_iter_",
        "pseudo_label_history_",
        "n_strong_",
        "n_weak_",
        "n_unlabeled_",
        "best_epoch_",
        "threshold_",
        "median_filter_sec_",
        "low_threshold_",
        "validation_f1_",
    )

    # With metadata routing, ``fit`` asks for ``y_strong`` without a
    # ``set_fit_request`` call: the two-stage training needs it.
    __metadata_request__fit = {"y_strong": True}

    _parameter_constraints: dict = {
        "module": [HasMethods(["forward"]), callable, None],
        # Bounded, so that a model file cannot declare a network that fills
        # the memory before its weights are read (docs/reliability.md).
        "n_filters": [Interval(numbers.Integral, 1, MAX_FILTERS, closed="both")],
        # A tuple (one count per stage) is checked when the network is built.
        "n_blocks": [Interval(numbers.Integral, 1, MAX_BLOCKS, closed="both"), tuple],
        "classes": ["array-like", None],
        "class_weight": [StrOptions({"paper"}), "array-like", None],
        "optimizer": [callable, StrOptions(set(OPTIMIZERS))],
        # Beyond 10 no optimizer here trains (SGD at 0.05 is the report's).
        "lr": [Interval(numbers.Real, 0, MAX_LR, closed="right")],
        "batch_size": [Interval(numbers.Integral, 1, MAX_BATCH_SIZE, closed="both")],
        "max_epochs": [Interval(numbers.Integral, 0, MAX_EPOCHS, closed="both")],
        "lr_schedule": [WarmupCosine, None],
        "augment": [Augment, None],
        "pseudo_labels": [PseudoLabelSchedule, StrOptions({"paper"}), None],
        "mean_teacher": [MeanTeacher, None],
        "train_dtype": [StrOptions({"float32", "bfloat16", "auto"})],
        "compile": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither"), None],
        "decoder": [Decoder, None],
        "duration": [Interval(numbers.Real, 0, MAX_DURATION_SEC, closed="right")],
        "device": [str, torch.device],
        "inference_dtype": [StrOptions({"float32", "bfloat16"})],
        "predict_batch_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            None,
        ],
        "checkpoint_dir": [str, None],
        "memory": [None, str, HasMethods(["cache"])],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "accelerator": [None, HasMethods(["prepare", "backward"])],
        "net_params": [dict, None],
    }

    def __init__(
        self,
        module=None,
        *,
        n_filters=64,
        n_blocks=2,
        classes=None,
        class_weight="paper",
        optimizer=torch.optim.SGD,
        lr=0.05,
        batch_size=32,
        max_epochs=20,
        lr_schedule=None,
        augment=None,
        pseudo_labels="paper",
        mean_teacher=None,
        train_dtype="float32",
        compile=False,
        validation_fraction=None,
        decoder=None,
        duration=10.0,
        device="cpu",
        inference_dtype="float32",
        predict_batch_size=None,
        checkpoint_dir=None,
        memory=None,
        random_state=None,
        verbose=0,
        callbacks=None,
        accelerator=None,
        net_params=None,
    ):
        self.module = module
        self.n_filters = n_filters
        self.n_blocks = n_blocks
        self.classes = classes
        self.class_weight = class_weight
        self.optimizer = optimizer
        self.lr = lr
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.lr_schedule = lr_schedule
        self.augment = augment
        self.pseudo_labels = pseudo_labels
        self.mean_teacher = mean_teacher
        self.train_dtype = train_dtype
        self.compile = compile
        self.validation_fraction = validation_fraction
        self.decoder = decoder
        self.duration = duration
        self.device = device
        self.inference_dtype = inference_dtype
        self.predict_batch_size = predict_batch_size
        self.checkpoint_dir = checkpoint_dir
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.accelerator = accelerator
        self.net_params = net_params

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.device != "cpu"
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y_weak, y_strong=None, *, X_val=None, y_val=None):
        """Train the network in two stages.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_frames, n_mels)
            Feature maps from :class:`~sklearn_sed.LogMelExtractor`.
        y_weak : array-like of shape (n_clips, n_classes) or sequence of collections
            Weak labels: an indicator matrix, or per clip the labels present
            (a comma-separated string is split). May be None when every clip
            has strong labels, or a list of
            :class:`~sklearn_sed.labels.ClipLabels` holding both labels (then
            ``y_strong`` is None).
        y_strong : sequence or ndarray, default=None
            Strong labels: per clip a list of ``(onset, offset, event_label)``
            in seconds, or None for a weak-only clip; or frame labels with NaN
            rows for weak-only clips. A strong clip's weak label must match
            its events. An ndarray has shape (n_clips, n_frames_out,
            n_classes).
        X_val : array-like of shape (n_val_clips, n_frames, n_mels), default=None
            Feature maps of strongly labelled validation clips, never trained
            on: the epoch with the best validation event F1 is kept, and with
            ``tune_postprocessing`` the per-class post-processing is chosen
            on them. Overrides ``validation_fraction``.
        y_val : sequence of sequence of (onset, offset, event_label), default=None
            Reference events of the validation clips (required with
            ``X_val``).

        Returns
        -------
        self : PseudoLabelSED
            The fitted estimator.

        Notes
        -----
        Training is seeded from ``random_state`` in a fork of torch's random
        generator: the caller's global torch random state is left as it was.
        """
        devices = [torch.cuda.current_device()] if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=devices):
            return self._fit(X, y_weak, y_strong, X_val=X_val, y_val=y_val)

    def _fit(self, X, y_weak, y_strong, *, X_val, y_val):
        check_device(self.device, trains=True)
        schedule = self._schedule()
        for obj in (self.lr_schedule, self.augment, self._decoder(), self.mean_teacher):
            if obj is not None:  # parameter objects are checked before any work
                obj._validate_params()
        X = check_features(X)
        if y_strong is None and is_combined(y_weak):
            y_weak, y_strong = split_labels(y_weak)
        if y_weak is None:
            if y_strong is None or any(ev is None for ev in y_strong):
                raise ValueError(
                    "y_weak may be None only when every clip has strong labels. "
                    "Consider passing the weak labels of the weak-only clips."
                )
            y_weak = [weak_labels_of(ev) for ev in y_strong]
        check_n_clips(X, y_weak, name="y_weak")
        if y_strong is not None:
            check_n_clips(X, y_strong, name="y_strong")
        Y_weak, self.classes_ = encode_weak_labels(y_weak, self.classes)
        check_class_names(self.classes_, name="the classes of y_weak")
        n_classes = Y_weak.shape[1]
        if n_classes == 0:
            raise ValueError(
                "y_weak holds no class at all. Consider passing `classes`."
            )
        self.n_mels_in_ = X.shape[2]
        self.n_frames_in_ = X.shape[1]
        self._parameter_decoding()  # a wrong-length threshold fails now, not later

        if self.random_state is None and self.checkpoint_dir is not None:
            # Recorded, so that rerunning the same fit resumes its checkpoint.
            from sklearn_sed.training.checkpoints import training_seed

            seed = training_seed(self.checkpoint_dir)
        else:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        torch.manual_seed(seed)
        self.n_frames_out_ = self._probe_output_frames(X, n_classes)
        y = encode_targets(
            Y_weak,
            y_strong,
            classes=self.classes_,
            n_frames=self.n_frames_out_,
            duration=self.duration,
        )
        strong = y["kind"] == KIND_STRONG
        if not strong.any():
            warnings.warn(
                "No clip has strong labels: eq. 8 has no frame loss, so the frame "
                "outputs are trained only through the clip max-pooling (weak "
                "training). Consider adding strongly labelled clips.",
                UserWarning,
                stacklevel=4,
            )
        if strong.all() and schedule is not None:
            warnings.warn(
                "No weak-only clip: stage 2 has nothing to pseudo-label and is "
                "skipped (n_iter_ will be 0).",
                UserWarning,
                stacklevel=4,
            )
        X, y, val, y_strong = self._validation_split(X, y, y_strong, X_val, y_val, seed)
        self.n_unlabeled_ = int((y["kind"] == KIND_UNLABELED).sum())
        self._check_unlabeled(schedule)
        self.class_weight_ = self._class_weight(y["weak"][y["kind"] != KIND_UNLABELED])
        self.n_strong_ = int((y["kind"] == KIND_STRONG).sum())
        self.n_weak_ = int((y["kind"] == KIND_WEAK).sum())
        self.teacher_ = None
        teacher_probs = None
        if (
            schedule is not None
            and schedule.teacher is not None
            and schedule.max_iter > 0
            and self.n_weak_ + self.n_unlabeled_ > 0
        ):
            self.teacher_, teacher_probs = self._fit_teacher(
                schedule.teacher, X, y, y_strong, val
            )

        if self.memory is None:
            net, history, best_epoch = self._train(X, y, seed, val, teacher_probs)
        else:
            train = check_memory(self.memory).cache(_train_cached)
            net, history, best_epoch, self.training_path_ = train(
                self._training_params(validating=val is not None),
                self.classes_,
                X,
                y,
                seed,
                val,
                teacher_probs,
            )
        self.net_ = net
        self.pseudo_label_history_ = history
        self.n_iter_ = len(history)
        self.best_epoch_ = best_epoch
        self._set_decoding(val)
        # After the tuning: the decoding that this fit chose.
        net.decoding_ = self._decoding()
        return self

    def _check_unlabeled(self, schedule):
        """Refuse unlabelled clips that no part of the training would use."""
        if not self.n_unlabeled_ or self.mean_teacher is not None:
            return
        if schedule is None or schedule.unlabeled_confidence is None:
            what = (
                "pseudo_labels=None"
                if schedule is None
                else "pseudo_labels.unlabeled_confidence=None"
            )
            raise ValueError(
                f"{self.n_unlabeled_} training clip(s) have no label (-1), but "
                f"{what} and mean_teacher=None leave them unused. Use a "
                "PseudoLabelSchedule with unlabeled_confidence, or "
                "mean_teacher=MeanTeacher(), or drop the unlabelled clips."
            )

    def _validation_split(self, X, y, y_strong, X_val, y_val, seed):
        """Split off the validation clips: given, held out of the strong ones, or none.

        Returns the training features and targets, ``(X_val, y_val)`` or
        None, and the strong labels of the training clips (``y_strong``
        itself when all clips train).
        """
        if X_val is not None or y_val is not None:
            if X_val is None or y_val is None:
                raise ValueError(
                    "X_val and y_val go together: pass the validation feature "
                    "maps and their reference events, or neither."
                )
            X_val = check_features(X_val, n_mels=X.shape[2])
            check_n_clips(X_val, y_val, name="y_val")
            refs = [
                check_events(
                    ev,
                    duration=self.duration,
                    classes=self.classes_,
                    name=f"y_val[{i}]",
                )
                for i, ev in enumerate(y_val)
            ]
            return X, y, (X_val, refs), y_strong
        if self.validation_fraction is None:
            return X, y, None, y_strong
        strong_idx = np.flatnonzero(y["kind"] == KIND_STRONG)
        n_val = round(self.validation_fraction * len(strong_idx))
        if n_val < 1 or n_val >= len(strong_idx):
            raise ValueError(
                f"validation_fraction={self.validation_fraction} of the "
                f"{len(strong_idx)} strongly labelled clips leaves "
                f"{n_val} for validation and {len(strong_idx) - n_val} for "
                "training; both need at least one. Consider more strong clips, "
                "another fraction, or X_val/y_val."
            )
        rng = np.random.RandomState(seed)
        val_idx = np.sort(rng.choice(strong_idx, size=n_val, replace=False))
        train_idx = np.setdiff1d(np.arange(len(y["kind"])), val_idx)
        refs = [list(y_strong[i]) for i in val_idx]
        # Indexing keeps a feature store's rows on disk (a lazy FeatureView).
        y = {k: v[train_idx] for k, v in y.items()}
        y_strong = take_clips(y_strong, train_idx)  # events or frame labels
        return X[train_idx], y, (np.asarray(X[val_idx]), refs), y_strong

    def _fit_teacher(self, teacher, X, y, y_strong, val):
        """Fit a clone of ``teacher`` on the training clips; draw its labels.

        Returns the fitted teacher and its ``(frame_probs, clip_probs)`` of
        the weak clips (in their order in ``y``), in the column order of
        ``classes_`` and at ``n_frames_out_`` frames.
        """
        teacher = clone(teacher)
        # The teacher trains on the labelled clips; it labels the others.
        keep = np.flatnonzero(y["kind"] != KIND_UNLABELED)
        y_weak = [list(self.classes_[y["weak"][i] > 0]) for i in keep]
        if y_strong is not None:
            y_strong = take_clips(y_strong, keep)
        kwargs = {} if val is None else {"X_val": val[0], "y_val": val[1]}
        X_fit = X if len(keep) == len(X) else X[keep]
        teacher.fit(X_fit, y_weak, y_strong, **kwargs)
        t_classes = [str(c) for c in getattr(teacher, "classes_", ())]
        missing = [str(c) for c in self.classes_ if str(c) not in t_classes]
        if missing:
            raise ValueError(
                f"The teacher knows the classes {t_classes} but not {missing}, "
                "which this estimator detects. Consider passing "
                f"classes={[str(c) for c in self.classes_]} to the teacher."
            )
        columns = [t_classes.index(str(c)) for c in self.classes_]
        weak_idx = np.flatnonzero(y["kind"] != KIND_STRONG)
        X_weak = np.asarray(X[weak_idx])
        inner = teacher.estimator if isinstance(teacher, FrozenEstimator) else teacher
        if isinstance(inner, PseudoLabelSED):  # both from one forward pass
            frames, clips = inner._forward_all(X_weak)
        else:
            frames, clips = (
                teacher.predict_frames(X_weak),
                teacher.predict_proba(X_weak),
            )
        frames = np.asarray(frames, dtype=np.float32)
        clips = np.asarray(clips, dtype=np.float32)
        frames, clips = frames[..., columns], clips[:, columns]
        n_in = frames.shape[1]
        if n_in != self.n_frames_out_:  # nearest frame of the teacher's grid
            k = ((np.arange(self.n_frames_out_) + 0.5) * n_in) // self.n_frames_out_
            frames = frames[:, k.astype(int)]
        return teacher, (frames, clips)

    def _set_decoding(self, val):
        """Set the decoding attributes and ``validation_f1_``."""
        decoding = self._parameter_decoding()
        self.threshold_, self.median_filter_sec_, self.low_threshold_ = decoding
        self.validation_f1_ = None
        if val is None:
            return
        X_val, refs = val
        frame_probs, _ = _forward(self.net_, X_val, None, self.batch_size)
        decoder = self._decoder()
        if decoder.tune:
            # The final tuning of the kept weights: the epochs were monitored
            # over the small grid, this one adds long medians and hysteresis.
            tuned = tune_postprocessing(
                frame_probs,
                refs,
                classes=self.classes_,
                duration=self.duration,
                thresholds=THRESHOLD_GRID,
                median_filters=FINAL_MEDIAN_FILTER_GRID,
                low_ratios=LOW_RATIO_GRID,
                order=decoder.order,
            )
            self.threshold_, self.median_filter_sec_, self.low_threshold_, f1 = tuned
            self.validation_f1_ = float(np.mean(f1))
        else:
            with classes_without_events_quietly():
                score = event_f1_scorer.score_events(
                    refs,
                    self.decode(frame_probs),
                    classes=self.classes_,
                    duration=self.duration,
                )
            self.validation_f1_ = float(score)

    def decoding_settings(self):
        """Return the per-class decoding settings (threshold, filter, hysteresis).

        The tuned ones (``threshold_``, ``median_filter_sec_``,
        ``low_threshold_``) when ``decoder.tune`` chose them on validation
        clips, else the ``threshold``, ``median_filter_sec`` and
        ``low_threshold`` of ``decoder`` for every class.
        ``predict``, ``predict_events``, the command line's ``--threshold``
        overrides and its detection figure all read them here.

        Returns
        -------
        threshold : ndarray of shape (n_classes,)
            Decision threshold of each class, in [0, 1].
        median_filter_sec : ndarray of shape (n_classes,)
            Median-filter length of each class, in seconds.
        low_threshold : ndarray of shape (n_classes,)
            Hysteresis low threshold of each class, in [0, threshold]; equal
            to ``threshold`` for single thresholding.
        """
        check_is_fitted(self, "classes_")
        tuned = getattr(self, "validation_f1_", None) is not None
        if self._decoder().tune and tuned:
            # Models saved before hysteresis have no low_threshold_.
            low = getattr(self, "low_threshold_", None)
            return (
                self.threshold_,
                self.median_filter_sec_,
                self.threshold_.copy() if low is None else low,
            )
        return self._parameter_decoding()

    def _decoding(self, tuned=True):
        """Return the decoding of this fitted estimator as a value object.

        With ``tuned=False`` the parameters' settings, never those a
        previous fit tuned (training scores its epochs with them).
        """
        settings = self.decoding_settings() if tuned else self._parameter_decoding()
        threshold, median_filter_sec, low_threshold = settings
        return Decoding(
            classes=self.classes_,
            duration=self.duration,
            threshold=threshold,
            median_filter_sec=median_filter_sec,
            low_threshold=low_threshold,
            order=self._decoder().order,
        )

    def _parameter_decoding(self):
        """Per-class ``threshold``, ``median_filter_sec``, ``low_threshold``."""
        return self._decoder().per_class(self.classes_)

    def _decoder(self):
        """Return the ``decoder`` parameter, ``Decoder()`` for None."""
        return Decoder() if self.decoder is None else self.decoder

    def _schedule(self):
        """Return the ``pseudo_labels`` parameter as a checked schedule, or None."""
        schedule = self.pseudo_labels
        if isinstance(schedule, str):  # "paper"
            schedule = PseudoLabelSchedule()
        return None if schedule is None else schedule.check()

    def _training_params(self, validating=False):
        """Return the parameters that determine the trained weights and best epoch.

        With ``validating`` (validation clips choose the best epoch), the
        decoding parameters are among them: each epoch's events are decoded
        with them.
        """
        params = self.get_params(deep=False)
        drop = POSTPROCESSING_PARAMS | {"memory"}
        if validating:
            drop = drop - {"decoder"}
        for name in drop:
            params.pop(name)
        return params

    def _class_weight(self, Y_weak):
        n_classes = Y_weak.shape[1]
        if isinstance(self.class_weight, str):  # "paper": eq. 2
            return paper_class_weights(Y_weak.sum(axis=0))
        if self.class_weight is None:
            return np.full(n_classes, 1.0 / n_classes)
        return check_per_class(
            self.class_weight, name="class_weight", n_classes=n_classes, low=0.0
        )

    def _build_module(self, n_classes):
        """Build a fresh module (:func:`~sklearn_sed.training.build.build_module`)."""
        return build_module(
            self.module, n_classes, n_filters=self.n_filters, n_blocks=self.n_blocks
        )

    def _make_net(
        self, n_weak, n_strong, extra_callbacks=(), last_callbacks=(), *, train=True
    ):
        """Return the skorch net of these settings (``train=False``: to load into)."""
        schedule = self._schedule()
        collate = None
        module = self._build_module(len(self.classes_))
        if self.augment is not None:
            collate = self.augment.collate(
                pooling=max(1, round(self.n_frames_in_ / self.n_frames_out_)),
                # Networks whose input holds more than mel bands say how many.
                n_bands=getattr(module, "n_mel_bands", None),
            )
        if train:
            path = self._training_path(module)
            train_dtype, compile_ = path.train_dtype, path.compile
        else:  # a net to load weights into: never compiled
            train_dtype = "float32" if self.train_dtype == "auto" else self.train_dtype
            compile_ = False
        return make_training_net(
            module,
            class_weight=self.class_weight_,
            n_weak=n_weak,
            n_strong=n_strong,
            optimizer=self.optimizer,
            lr=self.lr,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            device=self.device,
            verbose=self.verbose,
            train_dtype=train_dtype,
            compile=compile_,
            probed=train and self.compile == "auto",
            weighting="paper" if schedule is None else schedule.weighting,
            collate_fn=collate,
            callbacks=[*extra_callbacks, *list(self.callbacks or []), *last_callbacks],
            accelerator=self.accelerator,
            net_params=self.net_params,
        )

    def _training_path(self, module):
        """Resolve ``"auto"`` settings to a concrete training set-up.

        :func:`~sklearn_sed.training.fast_path.choose_training_path` decides.

        Sets ``training_path_``; a fallback after a failed probe warns once
        per fit, and ``verbose`` prints the set-up chosen.
        """
        from sklearn_sed.training.fast_path import (
            TrainingPath,
            choose_training_path,
        )

        if self.accelerator is not None:
            path = TrainingPath(
                "float32" if self.train_dtype == "auto" else self.train_dtype,
                False if self.compile == "auto" else bool(self.compile),
                "eager: the probe does not run under an accelerator",
            )
        else:
            path = choose_training_path(
                module,
                compile=self.compile,
                train_dtype=self.train_dtype,
                input_shape=(self.n_frames_in_, self.n_mels_in_),
                batch_size=self.batch_size,
                device=self.device,
            )
        failed = [
            p
            for p in path.probes
            if p["outcome"] in ("aborted", "timeout", "mismatch", "failed")
        ]
        if failed:
            warnings.warn(
                'The training probe of compile/train_dtype="auto" ran each '
                "faster set-up in a child process; this fit trains "
                f"{path.reason}. (Cached per machine and shape; "
                "SKLEARN_SED_PROBE=off skips the probe.)",
                UserWarning,
                stacklevel=6,
            )
        elif self.verbose:
            print(f"Training set-up: {path.reason}", flush=True)
        self.training_path_ = path
        return path

    def _probe_output_frames(self, X, n_classes):
        return check_module_output(
            self._build_module(n_classes), np.asarray(X[:1]), n_classes
        )

    def _fingerprint(self, X, y, seed, val=None, teacher_probs=None):
        """Hash of what determines the trained weights (for checkpoints)."""
        import joblib

        params = self._training_params(validating=val is not None)
        for name in ("callbacks", "device", "accelerator"):
            params.pop(name, None)
        # Parameter objects by their fields; the teacher counts through its labels.
        for name, value in params.items():
            if hasattr(value, "get_params"):
                fields = value.get_params(deep=False)
                fields.pop("teacher", None)
                params[name] = (type(value).__name__, fields)
        key = (params, X.shape, hash_rows(X), y["weak"], y["frames"], y["kind"], seed)
        if val is not None:
            key += (hash_rows(val[0]), val[1])
        if teacher_probs is not None:
            key += tuple(teacher_probs)
        return joblib.hash(key)

    def _train(self, X, y, seed, val=None, teacher_probs=None):
        """Stage 1, then the pseudo-label iterations, in one skorch fit.

        The stages are the :class:`~sklearn_sed.training.callbacks.PseudoLabeling`
        callback; with ``checkpoint_dir`` a
        :class:`~sklearn_sed.training.checkpoints.TrainingCheckpoint` writes the state
        after every epoch, and a fit that finds a checkpoint of the same
        training resumes from it with the remaining epochs. Returns the net
        (with the best validation epoch's weights, or the averaged weights,
        when asked), the pseudo-label record and the best epoch.
        """
        from sklearn_sed.training.checkpoints import (
            CHECKPOINT_NAME,
            TrainingCheckpoint,
            load_checkpoint,
            restore,
        )

        torch.manual_seed(seed)
        n_strong = int((y["kind"] == KIND_STRONG).sum())
        n_weak = int((y["kind"] == KIND_WEAK).sum())
        n_unlabeled = int((y["kind"] == KIND_UNLABELED).sum())
        schedule = self._schedule() or PseudoLabelSchedule(max_iter=0)
        labels_unlabeled = schedule.unlabeled_confidence is not None
        n_to_label = n_weak + (n_unlabeled if labels_unlabeled else 0)
        stages = PseudoLabeling(
            X,
            y,
            stage1_epochs=self.max_epochs,
            n_iter=schedule.max_iter if n_to_label > 0 else 0,
            delta=schedule.delta,
            start=schedule.threshold_start,
            floor=schedule.threshold_floor,
            batch_size=self.batch_size,
            teacher_probs=teacher_probs,
            unlabeled_confidence=schedule.unlabeled_confidence,
        )
        total = stages.total_epochs
        extra = [("pseudo_labeling", stages)]
        if self.lr_schedule is not None:
            extra.append(("lr_schedule", self.lr_schedule.callback(total)))
        if self.mean_teacher is not None:
            per_epoch = math.ceil(len(X) / self.batch_size)
            extra.append(("mean_teacher", self.mean_teacher.callback(total, per_epoch)))
        if val is not None:
            extra.append(
                ("validation", ValidationScoring(*val, tune=self._decoder().tune))
            )
            extra.append(("best_weights", BestWeights()))
        last = []
        fingerprint = None
        if self.checkpoint_dir is not None:
            fingerprint = self._fingerprint(X, y, seed, val, teacher_probs)
            last.append(
                (
                    "checkpoint",
                    TrainingCheckpoint(
                        self.checkpoint_dir,
                        fingerprint=fingerprint,
                        y=y,
                        pseudo_labeling=stages,
                    ),
                )
            )
        net = self._make_net(n_weak, n_strong, extra, last)
        net.initialize()
        # How validation and SED scorers in skorch's EpochScoring decode
        # events in training: a value object, not a pointer to this estimator.
        net.decoding_ = self._decoding(tuned=False)
        done = 0
        if fingerprint is not None:
            state = load_checkpoint(
                self.checkpoint_dir, fingerprint=fingerprint, y=y, total_epochs=total
            )
            if state is not None:
                stages.records_ = restore(
                    net, state, y, os.path.join(self.checkpoint_dir, CHECKPOINT_NAME)
                )
                done = state["epochs_done"]
        if done < total:
            # One skorch training run over the remaining epochs of both stages.
            net.partial_fit(X, y, epochs=total - done)
        if stages.n_iter > 0 and len(net.history) <= stages.stage1_epochs:
            warnings.warn(
                f"Training stopped after epoch {len(net.history)} of stage 1's "
                f"{stages.stage1_epochs} (a callback such as EarlyStopping ended "
                "skorch's training run, which holds both stages): stage 2 did not "
                "run and no pseudo labels were used. Give EarlyStopping a "
                "patience beyond max_epochs, or lower max_epochs.",
                UserWarning,
                stacklevel=4,
            )
        # Also when a finished checkpoint resumed.
        stages.X = stages.y = stages.teacher_probs = None
        if net.compile:
            drop_compiled(net)
        best_epoch = None
        if val is not None:
            best = dict(net.callbacks_)["best_weights"]
            best.restore(net)
            best_epoch = best.best_epoch_ or None
        elif self.mean_teacher is not None:  # the teacher is the model
            load_module_state(net.module_, module_state(evaluation_module(net)))
        return net, stages.records_, best_epoch

    # -------------------------------------------------------------- predict
    def _forward_all(self, X):
        check_is_fitted(self, "net_")
        X = check_features(X, n_mels=self.n_mels_in_)
        if X.shape[1] != self.n_frames_in_:
            raise ValueError(
                f"X has {X.shape[1]} frames per clip but PseudoLabelSED was fitted "
                f"on {self.n_frames_in_}: the clips differ in duration, sample rate "
                "or hop_length. Consider the LogMelExtractor settings used at fit "
                "time (a Pipeline keeps them together), and "
                "sklearn_sed.inference.predict_file_events for long recordings."
            )
        batch_size = self.predict_batch_size
        if batch_size is None:
            on_cpu = device_type(self.net_) == "cpu"
            batch_size = 1 if on_cpu else self.batch_size
        if self.memory is None:
            return _forward(self.net_, X, None, batch_size, dtype=self.inference_dtype)
        forward = check_memory(self.memory).cache(_forward_cached, ignore=["net"])
        return forward(
            _weights_key(self.net_),
            X,
            batch_size,
            self.inference_dtype,
            str(self.net_.device),
            net=self.net_,
        )

    def predict_frames(self, X):
        """Frame probabilities.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_frames, n_mels)
            Feature maps.

        Returns
        -------
        frame_probs : ndarray of shape (n_clips, n_frames_out, n_classes)
            Probability of each class in each output frame (128 frames for
            10 s clips).
        """
        return self._forward_all(X)[0]

    def predict_proba(self, X):
        """Clip probabilities: the network's clip output.

        The max of the frame probabilities over time for the report's
        ResNet; the CRNN's attention pooling for
        :class:`~sklearn_sed.networks.crnn.CRNN`.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_frames, n_mels)
            Feature maps.

        Returns
        -------
        clip_probs : ndarray of shape (n_clips, n_classes)
            Probability that each class occurs in the clip.
        """
        return self._forward_all(X)[1]

    def predict(self, X):
        """Clip labels: the clip probabilities binarized at ``threshold``.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_frames, n_mels)
            Feature maps.

        Returns
        -------
        y_pred : ndarray of shape (n_clips, n_classes), dtype int
            1 where the class is detected, in the column order of ``classes_``.
        """
        clip_probs = self.predict_proba(X)
        thresholds, *_ = self.decoding_settings()
        return (clip_probs >= thresholds).astype(int)

    def decode(self, frame_probs, *, duration=None):
        """Post-process frame probabilities into events with this estimator's settings.

        The thresholds, median filters and hysteresis are the tuned ones
        (``threshold_``, ``median_filter_sec_``, ``low_threshold_``) when
        ``decoder.tune`` chose them, else the settings of ``decoder``: every
        prediction path decodes alike.

        Parameters
        ----------
        frame_probs : ndarray of shape (n_clips, n_frames, n_classes)
            Frame probabilities, e.g. from :meth:`predict_frames`.
        duration : float, default=None
            Seconds spanned by the ``n_frames`` frames; None is the clip
            ``duration`` (pass the recording's length for the stitched frames
            of a long file).

        Returns
        -------
        events : list of list of (onset, offset, event_label)
            Per clip, events in seconds.
        """
        check_is_fitted(self, "classes_")
        decoding = self._decoding()
        if duration is not None:
            decoding = dataclasses.replace(decoding, duration=duration)
        return decoding.decode(frame_probs)

    def predict_events(self, X):
        """Detect events.

        Parameters
        ----------
        X : array-like of shape (n_clips, n_frames, n_mels)
            Feature maps.

        Returns
        -------
        events : list of list of (onset, offset, event_label)
            Per clip, the events in seconds, after thresholding and median
            filtering.
        """
        return self.decode(self._forward_all(X)[0])

    def score(self, X, y_strong):
        """Event-based macro F1 (sed_eval, DCASE2019 settings).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_frames, n_mels)
            Feature maps.
        y_strong : sequence of (list of (onset, offset, event_label) or None)
            Reference events per clip (or a list of ``ClipLabels``); clips
            with None (weak-only) are not scored.

        Returns
        -------
        f1 : float
            Event-based F1, macro-averaged over classes, in [0, 1].
        """
        return event_f1_scorer(self, X, y_strong)

    def score_segments(self, X, y_strong):
        """Segment-based macro F1 (1 s segments).

        Parameters
        ----------
        X : array-like of shape (n_clips, n_frames, n_mels)
            Feature maps.
        y_strong : sequence of sequence of (onset, offset, event_label)
            Reference events per clip.

        Returns
        -------
        f1 : float
            Segment-based F1, macro-averaged over classes, in [0, 1].
        """
        return segment_f1_scorer(self, X, y_strong)


def _weights_key(net):
    """Hash of the module's class and weights: what a forward pass depends on."""
    import joblib

    module = bare_module(net)
    state = {k: v.numpy() for k, v in module_state(module).items()}
    return joblib.hash((type(module).__module__, type(module).__qualname__, state))


def _forward_cached(weights_key, X, batch_size, dtype, device, net):
    """Run :func:`_forward` as a pure function of its hashed arguments.

    For ``joblib.Memory``: ``net`` is not hashed, ``weights_key`` stands for it.
    """
    return _forward(net, X, None, batch_size, dtype=dtype)


def _train_cached(params, classes, X, y, seed, val=None, teacher_probs=None):
    """Training as a pure function of its inputs, for ``joblib.Memory``.

    ``params`` are the estimator's training parameters (post-processing ones
    are left out unless validation decodes with them), so that refits that
    differ only in post-processing hit the cache. ``classes`` are the fitted
    classes: validation scores events by their labels. Returns what
    ``_train`` returns and the training set-up it used (``training_path_``).
    """
    est = PseudoLabelSED(**params)
    est.classes_ = np.asarray(classes)
    est.class_weight_ = est._class_weight(y["weak"])
    est.n_frames_in_, est.n_frames_out_ = X.shape[1], y["frames"].shape[1]
    est.n_mels_in_ = X.shape[2]  # the training probe's input shape
    y = {k: v.copy() for k, v in y.items()}
    return (*est._train(X, y, seed, val, teacher_probs), est.training_path_)
