"""Optional extras: PSDS through sed_scores_eval, and grid search on Dask."""

import functools

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from sklearn_sed import Decoder, PseudoLabelSED
from sklearn_sed.labels import combine_labels, events_to_frames
from sklearn_sed.metrics.psds import psds_score, psds_scorer
from sklearn_sed.metrics.scoring import event_f1_scorer
from tests.conftest import FAST_SED as FAST


def test_psds_is_one_for_perfect_scores_and_low_for_noise():
    """Check PSDS1 is 1 for scores equal to the reference and lower for noise."""
    ref = [[(0.5, 1.5, "a")], [(0.0, 1.0, "b"), (2.0, 3.5, "a")]]
    frames = np.stack(
        [
            events_to_frames(r, classes=["a", "b"], n_frames=40, duration=4.0)
            for r in ref
        ]
    )
    assert psds_score(frames, ref, classes=["a", "b"], duration=4.0) == pytest.approx(
        1.0
    )
    noise = np.random.default_rng(0).random(frames.shape)
    assert psds_score(noise, ref, classes=["a", "b"], duration=4.0) < 0.5
    assert (
        0 <= psds_score(noise, ref, classes=["a", "b"], duration=4.0, scenario=2) <= 1
    )


def test_psds_scorer_on_fitted_estimator(fitted_sed, tiny_dataset):
    """Check the PSDS scorer runs on a fitted detector and ranks it above noise."""
    F, y = tiny_dataset["F_test"], tiny_dataset["y_test"]
    assert psds_scorer(fitted_sed, F, y) > 0.2
    psds2 = functools.partial(psds_scorer, scenario=2)
    assert 0 <= psds2(fitted_sed, F, y) <= 1


def test_grid_search_on_dask_local_cluster(tiny_dataset):
    """Check GridSearchCV runs through joblib's dask backend on a 2-worker cluster."""
    distributed = pytest.importorskip("distributed")
    d = tiny_dataset
    F, y = d["F"][:16], combine_labels(d["y_weak"][:16], d["y_strong"][:16])
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with joblib.parallel_config(backend="dask"):
            search = GridSearchCV(
                PseudoLabelSED(**FAST, decoder=Decoder()),
                {"decoder__threshold": [0.3, 0.6]},
                cv=KFold(2),
                scoring=event_f1_scorer,
                n_jobs=-1,
            )
            search.fit(F, y)
        assert len(client.scheduler_info()["workers"]) == 2
    assert search.cv_results_["mean_test_score"].shape == (2,)
