"""Hostile round 4: what a model file says never reaches an output unchecked,
and conflicting or impossible settings give clear errors.

Each test reproduces one finding of the round on main before the fix.
"""

import json

import numpy as np
import pytest

import sklearn_sed
from sklearn_sed import LogMelExtractor, PseudoLabelSED
from sklearn_sed._device import check_device
from sklearn_sed.cli._common import CLIError
from sklearn_sed.cli.settings import apply_set
from sklearn_sed.pipeline import make_pipeline
from tests.conftest import (
    FAST_SED,
    MANIFEST,
    TINY_FEATURES,
    sed_entry,
    with_manifest,
    write_zip,
)


@pytest.fixture(scope="module")
def members(model_bytes):
    """The members of a saved pipeline's file (do not mutate)."""
    return model_bytes[1]


def _altered(members, tmp_path, change):
    """A model file whose detector entry ``change`` altered in place."""
    return with_manifest(members, tmp_path, lambda m: change(sed_entry(m)))


@pytest.mark.parametrize(
    "name",
    ["Dog\nINJECTED.wav\t0\t1\tSpeech", "Dog\tCat", "Dog\rCat", "", "x" * 201],
)
def test_a_class_name_that_would_break_an_event_table_is_refused_at_load(
    members, tmp_path, name
):
    def change(entry):
        entry["fitted"]["classes_"][0] = name

    with pytest.raises(ValueError, match=r"classes_\[0\] must be a class name"):
        sklearn_sed.load(_altered(members, tmp_path, change))


@pytest.mark.parametrize("name", [{"a": 1}, [1], True, 1.5, None])
def test_a_class_that_is_not_a_string_or_integer_is_refused_at_load(
    members, tmp_path, name
):
    def change(entry):
        entry["fitted"]["classes_"][0] = name

    with pytest.raises(ValueError, match="class name"):
        sklearn_sed.load(_altered(members, tmp_path, change))


def test_a_class_name_with_a_newline_is_refused_at_fit(tiny_dataset):
    d = tiny_dataset
    y_weak = [["Dog\nINJECTED"] if i % 2 else ["b"] for i in range(8)]
    with pytest.raises(ValueError, match="class name"):
        PseudoLabelSED(**FAST_SED).fit(d["F"][:8], y_weak)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("threshold_", [float("nan"), 0.5]),
        ("threshold_", [0.5]),
        ("median_filter_sec_", [-1.0, 0.0]),
        ("low_threshold_", [2.0, 0.1]),
        ("class_weight_", [float("inf"), 1.0]),
        ("n_iter_", -1),
        ("n_frames_out_", True),
        ("validation_f1_", float("nan")),
        ("pseudo_label_history_", [1, 2]),
    ],
)
def test_a_fitted_setting_fit_could_not_make_is_refused_at_load(
    members, tmp_path, field, value
):
    def change(entry):
        entry["fitted"][field] = value

    with pytest.raises(ValueError, match=field):
        sklearn_sed.load(_altered(members, tmp_path, change))


@pytest.mark.parametrize("threshold", [[0.5], [0.5, 0.5, 0.5], [float("nan"), 0.5]])
def test_a_per_class_decoder_threshold_of_the_wrong_length_or_nan_is_refused(
    members, tmp_path, threshold
):
    def change(entry):
        entry["params"]["decoder"] = {
            "object": "Decoder",
            "params": {"threshold": threshold},
        }

    with pytest.raises(ValueError, match="threshold"):
        sklearn_sed.load(_altered(members, tmp_path, change))


def test_a_training_history_beyond_its_bound_is_refused(members, tmp_path, monkeypatch):
    monkeypatch.setattr(sklearn_sed.io, "MAX_HISTORY_ROWS", 3)

    def change(entry):
        entry["history"] = entry["history"] * 4

    with pytest.raises(ValueError, match="at most 3 epochs"):
        sklearn_sed.load(_altered(members, tmp_path, change))


def test_an_unaltered_file_still_loads_and_predicts(members, tmp_path, tiny_dataset):
    pipe = sklearn_sed.load(_altered(members, tmp_path, lambda entry: None))
    assert pipe.predict_frames(tiny_dataset["audio"][:2]).shape[0] == 2


@pytest.mark.parametrize("device", ["cpu:99", "cpu:1"])
def test_a_cpu_index_other_than_0_is_refused(device):
    with pytest.raises(ValueError, match="one CPU device"):
        check_device(device)
    check_device("cpu:0")


def _fresh_pipe(**params):
    """A pipeline whose parameter objects are its own (cloned): ``--set``
    changes fields in place, and FAST_SED's objects are shared."""
    from sklearn.base import clone

    return clone(
        make_pipeline(
            LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**{**FAST_SED, **params})
        )
    )


@pytest.mark.parametrize(
    "params",
    [
        {"pseudo_labels__max_iter": 1, "pseudo_labels": None},
        {"pseudo_labels": None, "pseudo_labels__max_iter": 1},
        {"pseudo_labels": 0, "pseudo_labels__delta": 0.1},
    ],
)
def test_set_of_an_object_to_none_and_of_its_field_names_both(params):
    pipe = _fresh_pipe()
    keys = list(params)
    with pytest.raises(CLIError, match="conflict") as info:
        apply_set(pipe, params)
    assert all(k in str(info.value) for k in keys)


def test_set_of_an_object_and_of_its_field_still_works():
    from sklearn_sed import PseudoLabelSchedule

    pipe = _fresh_pipe()
    apply_set(
        pipe,
        {"pseudo_labels": PseudoLabelSchedule(), "pseudo_labels__max_iter": 2},
    )
    assert pipe[-1].pseudo_labels.max_iter == 2
    assert np.isclose(pipe[-1].pseudo_labels.delta, PseudoLabelSchedule().delta)


@pytest.mark.parametrize(
    "order",
    [["PseudoLabelSED", "LogMelExtractor"], ["PseudoLabelSED", "PseudoLabelSED"]],
)
def test_a_pipeline_of_the_wrong_structure_is_refused_at_load(members, tmp_path, order):
    manifest = json.loads(members[MANIFEST])
    by_type = {s["type"]: s for s in manifest["steps"]}
    manifest["steps"] = [
        {**by_type[kind], "name": f"step{i}"} for i, kind in enumerate(order)
    ]
    weights = by_type["PseudoLabelSED"]["weights"]
    path = write_zip(
        tmp_path / "shuffled.sed", {**members, MANIFEST: json.dumps(manifest)}
    )
    assert weights in members
    with pytest.raises(ValueError, match="holds a pipeline of"):
        sklearn_sed.load(path)


def test_a_pipeline_that_cannot_predict_is_refused_at_save(members, tmp_path):
    from sklearn.pipeline import Pipeline

    pipe = sklearn_sed.load(_altered(members, tmp_path, lambda entry: None))
    wrong = Pipeline([("sed", pipe[-1]), ("features", pipe[0])])
    with pytest.raises(ValueError, match="cannot predict"):
        sklearn_sed.save(wrong, tmp_path / "wrong.sed")
    assert not (tmp_path / "wrong.sed").exists()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"augment__freq_mask": 10**18}, "freq_mask"),
        ({"augment__filter_augment": 1e300}, "filter_augment"),
        ({"lr_schedule__warmup_epochs": 1e308}, "warmup_epochs"),
        ({"mean_teacher__consistency": 1e12}, "consistency"),
        ({"lr": 1e10}, "lr"),
        ({"pseudo_labels__max_iter": 10**6}, "max_iter"),
        ({"max_epochs": 10**9}, "max_epochs"),
        ({"batch_size": 10**9}, "batch_size"),
    ],
)
def test_a_field_that_sizes_a_loop_or_cannot_train_is_refused_by_its_bound(
    params, name
):
    from sklearn_sed import Augment, MeanTeacher, PseudoLabelSchedule, WarmupCosine

    pipe = _fresh_pipe(
        augment=Augment(),
        lr_schedule=WarmupCosine(),
        mean_teacher=MeanTeacher(),
        pseudo_labels=PseudoLabelSchedule(),
    )
    with pytest.raises(CLIError, match=name):
        apply_set(pipe, params)


def test_a_diverging_loss_stops_the_fit_with_a_clear_message(
    tiny_dataset, monkeypatch, tmp_path
):
    """Check a loss that is no longer finite (as a diverging lr makes it)
    stops the fit at that batch, naming the epoch and the lr, and that no
    model is left behind."""
    import torch

    from sklearn_sed.training.losses import PseudoLabelLoss

    monkeypatch.setattr(
        PseudoLabelLoss,
        "forward",
        lambda self, y_pred, y_true: torch.tensor(float("nan"), requires_grad=True),
    )
    d = tiny_dataset
    sed = PseudoLabelSED(**{**FAST_SED, "max_epochs": 3})
    with pytest.raises(FloatingPointError, match=r"diverged in epoch 1.*lr"):
        sed.fit(d["F"][:16], d["y_weak"][:16], d["y_strong"][:16])
    assert not hasattr(sed, "net_")


@pytest.mark.parametrize("rate", [1, 2**31 - 1])
def test_a_file_whose_header_states_an_absurd_rate_is_refused(tmp_path, rate):
    import soundfile as sf

    path = tmp_path / f"rate{rate}.wav"
    sf.write(path, np.zeros(4000, dtype=np.float32), rate)
    with pytest.raises(ValueError, match=f"sample rate of {rate} Hz"):
        LogMelExtractor(**TINY_FEATURES).fit_transform([str(path)])


def test_a_waveform_pair_with_an_absurd_rate_is_refused():
    with pytest.raises(ValueError, match="sample rate of 2"):
        LogMelExtractor(**TINY_FEATURES).fit_transform([(np.zeros(400), 2)])


def test_predict_scores_dir_with_missing_parents_is_refused(tmp_path):
    from sklearn_sed.cli._common import check_folder

    target = tmp_path / "no" / "such" / "scores"
    with pytest.raises(CLIError, match="parent folder"):
        check_folder("--scores-dir", str(target), parent_must_exist=True)
    assert not (tmp_path / "no").exists()
    check_folder("--scores-dir", str(tmp_path / "scores"), parent_must_exist=True)


def test_an_unlabelled_clip_that_is_a_labelled_one_through_a_symlink_is_refused(
    tmp_path,
):
    import os

    import soundfile as sf

    from sklearn_sed.datasets import load_desed

    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    os.symlink(audio, tmp_path / "unlabel_in_domain")
    weak = tmp_path / "weak.tsv"
    weak.write_text("filename\tevent_labels\na.wav\tDog\n")
    unlabeled = tmp_path / "unlabeled.tsv"
    unlabeled.write_text("filename\na.wav\n")
    with pytest.raises(ValueError, match=r"'a.wav' is listed in .*weak.tsv"):
        load_desed(
            weak_tsv=weak,
            weak_audio_dir=audio,
            unlabeled_tsv=unlabeled,
            unlabeled_audio_dir=tmp_path / "unlabel_in_domain",
        )


# -- property-based: the two surfaces a hostile round attacks ---------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
_FITTED = list(PseudoLabelSED.FITTED_ATTRIBUTES)
_PARAMS = ["lr", "batch_size", "max_epochs", "n_filters", "n_blocks", "duration"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    field=st.sampled_from(_FITTED + [f"params.{p}" for p in _PARAMS]),
    value=_json_values,
)
def test_any_json_in_a_model_field_loads_checked_or_is_a_value_error(
    members, tmp_path, tiny_dataset, field, value
):
    """Check a model file with any JSON value in one fitted attribute or
    parameter either is refused with a ValueError, or loads into a model
    whose classes are printable names and whose predictions are finite (or
    that refuses the clips with a ValueError: a valid ``duration`` shorter
    than the clips is such a model)."""

    def change(entry):
        if field.startswith("params."):
            entry["params"][field.split(".", 1)[1]] = value
        else:
            entry["fitted"][field] = value

    path = _altered(members, tmp_path, change)
    try:
        pipe = sklearn_sed.load(path)
    except ValueError:
        return
    sed = pipe[-1]
    assert all(str(c).isprintable() for c in sed.classes_)
    try:
        frames = pipe.predict_frames(tiny_dataset["audio"][:1])
    except ValueError:
        return  # refused with a message, nothing half-computed came out
    assert np.all(np.isfinite(frames))


_set_keys = st.sampled_from(
    [
        "lr",
        "batch_size",
        "max_epochs",
        "n_filters",
        "device",
        "duration",
        "compile",
        "train_dtype",
        "augment",
        "augment__freq_mask",
        "augment__filter_augment",
        "pseudo_labels",
        "pseudo_labels__max_iter",
        "mean_teacher",
        "mean_teacher__consistency",
        "lr_schedule__warmup_epochs",
        "decoder__threshold",
    ]
)
_set_values = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "None",
            "True",
            "'auto'",
            "cpu:99",
            "cuda:7",
            "1e308",
            "-0.0",
            "[0.1, 0.2, 0.3]",
            "Augment(freq_mask=10**18)",
            "Augment(freq_mask=8)",
            "MeanTeacher(ema_decay=0.99)",
            "MeanTeacher(consistency=1e12)",
            "PseudoLabelSchedule(max_iter=2)",
            "WarmupCosine(warmup_epochs=1e308)",
            "__import__('os').system('true')",
            "((((((((((1))))))))))",
        ]
    ),
    st.text(max_size=12),
)


@settings(max_examples=150, deadline=None)
@given(pairs=st.lists(st.tuples(_set_keys, _set_values), min_size=1, max_size=3))
def test_any_set_literals_are_applied_checked_or_are_a_cli_error(pairs):
    """Check any --set pairs either give a CLIError or a pipeline whose every
    parameter passes its constraints (nothing half-applied reaches fit)."""
    from sklearn_sed.cli.settings import parse_set

    pipe = _fresh_pipe()
    try:
        apply_set(pipe, parse_set([f"{k}={v}" for k, v in pairs]))
    except CLIError:
        return
    sed = pipe[-1]
    sed._validate_params()
    for obj in sed.get_params(deep=False).values():
        if hasattr(obj, "_validate_params"):
            obj._validate_params()


def test_a_frequency_mask_wider_than_the_mel_axis_masks_it_whole():
    """Check freq_mask beyond the mel bands (16 here) trains instead of
    ending in torch's internal error from randint."""
    import torch

    from sklearn_sed.training.augment import SEDAugment

    collate = SEDAugment(freq_mask=1000, pooling=8)
    items = [(np.ones((64, 16), np.float32), {"frames": np.zeros((8, 2))})] * 4
    X, _ = collate(items)
    assert X.shape == (4, 64, 16)
    assert torch.isfinite(X).all()


def test_a_class_list_parameter_with_a_newline_is_refused_at_load(members, tmp_path):
    def change(entry):
        entry["params"]["classes"] = ["a\nb", "c"]

    with pytest.raises(ValueError, match=r"classes\[0\] must be a class name"):
        sklearn_sed.load(_altered(members, tmp_path, change))
