"""The parameter objects changed the API, not the numbers nor the model files.

``tests/data`` holds what commit 49cbdfe (flat parameters) predicted after a
tiny fit of every recipe, and two model files it wrote
(``tests/data/make_reference.py``). A fit of the same recipe and seed today
must give the same probabilities, and the files must still load and predict
the same.
"""

import json
import pathlib
import zipfile

import numpy as np
import pytest

import sklearn_sed
from sklearn_sed.recipes import make_detector
from tests.conftest import make_tiny_dataset

DATA = pathlib.Path(__file__).parent / "data"
#: The reference's flat settings, as parameters of today.
TINY = dict(
    n_filters=4, max_epochs=2, pseudo_labels__max_iter=2, duration=2.0, random_state=0
)
#: Float32 convolutions may differ in their last bits between CPUs.
ATOL = 1e-4


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA / "reference_predictions.npz")


@pytest.fixture(scope="module")
def data():
    return make_tiny_dataset()


@pytest.mark.parametrize("recipe", ["paper", "cpu", "cpu_teacher"])
def test_every_recipe_predicts_as_before_for_the_same_seed(recipe, reference, data):
    sed = make_detector(recipe, **TINY).fit(data["F"], data["y_weak"], data["y_strong"])
    np.testing.assert_allclose(
        sed.predict_frames(data["F_test"]), reference[f"{recipe}_frames"], atol=ATOL
    )
    np.testing.assert_allclose(
        sed.predict_proba(data["F_test"]), reference[f"{recipe}_clips"], atol=ATOL
    )
    np.testing.assert_allclose(
        sed.decoding_settings()[0], reference[f"{recipe}_threshold"]
    )


def test_a_model_file_of_the_flat_parameters_loads_into_parameter_objects(
    reference, data
):
    sed = sklearn_sed.load(DATA / "model_v1_cpu.sed")
    np.testing.assert_allclose(
        sed.predict_frames(data["F_test"]), reference["cpu_frames"], atol=ATOL
    )
    assert sed.decoder.tune is True
    assert sed.decoder.threshold == 0.3
    assert sed.pseudo_labels.max_iter == 2
    assert sed.pseudo_labels.delta == 0.1
    assert sed.augment.filter_augment == 6.0
    assert sed.lr_schedule.warmup_epochs == 1
    np.testing.assert_allclose(sed.decoding_settings()[0], reference["cpu_threshold"])


def test_a_model_file_that_set_removed_training_levers_still_loads(reference, data):
    """mixup and ema_decay shaped the weights; prediction does not need them."""
    sed = sklearn_sed.load(DATA / "model_v1_levers.sed")
    np.testing.assert_allclose(
        sed.predict_frames(data["F_test"]), reference["levers_frames"], atol=ATOL
    )
    assert "mixup" not in sed.get_params()
    assert "ema_decay" not in sed.get_params()


def test_a_model_file_that_decoded_with_clip_gating_is_refused_naming_the_version(
    tmp_path,
):
    path = tmp_path / "gated.sed"
    with zipfile.ZipFile(DATA / "model_v1_cpu.sed") as src:
        with zipfile.ZipFile(path, "w") as dst:
            for item in src.infolist():
                blob = src.read(item)
                if item.filename == "sklearn_sed.json":
                    manifest = json.loads(blob)
                    manifest["steps"][0]["params"]["clip_gating"] = True
                    version = manifest["library_version"]
                    blob = json.dumps(manifest).encode()
                dst.writestr(item.filename, blob)
    with pytest.raises(ValueError, match=rf"clip_gating=True.*{version}"):
        sklearn_sed.load(path)


def test_a_saved_model_round_trips_its_parameter_objects(tmp_path, data):
    sed = make_detector(
        "cpu", **{**TINY, "max_epochs": 1, "pseudo_labels__max_iter": 1}
    )
    sed.set_params(decoder__low_threshold=0.2)
    sed.fit(data["F"], data["y_weak"], data["y_strong"])
    sklearn_sed.save(sed, tmp_path / "m.sed")
    loaded = sklearn_sed.load(tmp_path / "m.sed")
    for name in ("decoder", "augment", "pseudo_labels", "lr_schedule"):
        assert type(loaded.get_params()[name]) is type(sed.get_params()[name])
        assert loaded.get_params()[name].get_params() == (
            sed.get_params()[name].get_params()
        )
    np.testing.assert_array_equal(
        loaded.predict_frames(data["F_test"]), sed.predict_frames(data["F_test"])
    )
