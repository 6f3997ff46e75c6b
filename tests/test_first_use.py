"""What a new user meets first, on any x86-64 CPU: the main job and the
recipe's fit never abort the interpreter, the demo shows its progress and
explains its options, and everyday evaluation never raises on a class that
one side lacks."""

import copy
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.model_selection import KFold, cross_val_score

import sklearn_sed
from sklearn_sed import Decoder, PseudoLabelSchedule, PseudoLabelSED, event_f1_scorer
from sklearn_sed.cli.main import build_parser, main
from sklearn_sed.decoding.cv import TunedPostprocessingCV
from sklearn_sed.labels import combine_labels
from sklearn_sed.metrics.scoring import event_based_f1, segment_based_f1
from tests.conftest import FAST_SED, TINY_FEATURES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def fitted_pipeline(tiny_dataset):
    """A log-mel + detector pipeline fitted on 16 tiny clips (do not mutate)."""
    d = tiny_dataset
    pipe = sklearn_sed.make_pipeline(
        sklearn_sed.LogMelExtractor(**TINY_FEATURES),
        PseudoLabelSED(**FAST_SED),
    )
    return pipe.fit(d["audio"][:16], d["y_weak"][:16], d["y_strong"][:16])


def _child(code, *args, timeout=600):
    """Run Python ``code`` in a child process from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


def test_demo_runs_in_a_child_process_with_the_defaults_and_shows_epochs(demo_run):
    """Check `sklearn-sed demo` at a tiny size, with every default resolved
    as on this machine, exits 0 in its own interpreter (an abort there would
    be a signal) and prints a line per training epoch."""
    proc, folder = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    # skorch's epoch table: a row per epoch, 3 for each variant, uncoloured
    # (the output is not a terminal).
    rows = [line.split() for line in out.splitlines() if line.strip()]
    epochs = [r[0] for r in rows if r and r[0].isdigit() and len(r) > 2]
    assert epochs.count("1") == 2
    assert epochs.count("3") == 2
    assert "\x1b[" not in out
    assert "Event-based F1" in out
    assert (folder / "detection.png").is_file()


@pytest.mark.parametrize("n_filters", [8, 16])
def test_cpu_recipe_fits_in_a_child_process_at_the_demo_and_docs_widths(n_filters):
    """Check make_detector("cpu")'s fit at the demo's width (8) and the
    recipe's documented width (16) exits normally: compiled training aborted
    the interpreter at both on an AMD EPYC with AVX-512 BF16. The recipe's
    compile="auto" trains eagerly without a probe's verdict (the suite runs
    with SKLEARN_SED_PROBE=off; tests/test_fast_path.py runs the probe)."""
    code = f"""
from sklearn_sed import make_detector
from tests.conftest import make_tiny_dataset
d = make_tiny_dataset(n_train=16, n_test=4)
sed = make_detector("cpu", n_filters={n_filters}, n_blocks=1, duration=2.0,
                    max_epochs=1, pseudo_labels__max_iter=1, random_state=0)
sed.fit(d["F"], d["y_weak"], d["y_strong"])
path = sed.training_path_
print("fitted", sed.compile, path.compile, path.train_dtype)
"""
    proc = _child(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fitted auto False float32" in proc.stdout


def _options(parser):
    return [a for a in parser._actions if a.option_strings or a.dest != "help"]


def test_every_command_line_option_has_help():
    """Check `--help` of every command explains every option and argument."""
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    missing = [
        f"{name} {a.option_strings or a.dest}"
        for name, sub in commands.items()
        for a in _options(sub)
        if not a.help and a.dest != "help"
    ]
    assert missing == []


def test_demo_refuses_an_absurd_count_before_any_work(capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", "--n-train", "1e12"])
    assert info.value.code == 2
    assert "--n-train must be a whole number" in capsys.readouterr().err


# Everyday evaluation: a class that one side lacks is scored, never raised.


def test_output_class_absent_from_the_reference_counts_as_false_positives():
    ref = [[(1.0, 3.0, "Dog")]]
    est = [[(1.0, 3.0, "Dog"), (5.0, 6.0, "Frying")]]
    # Dog F1 1, Frying F1 0 (its false positive): macro 0.5.
    assert event_based_f1(ref, est) == pytest.approx(0.5)
    assert event_based_f1(ref, est, classes=["Dog"]) == pytest.approx(0.5)
    assert segment_based_f1(ref, est, classes=["Dog"]) == pytest.approx(0.5)


def test_reference_class_never_output_counts_as_misses():
    ref = [[(1.0, 3.0, "Dog"), (5.0, 6.0, "Cat")]]
    est = [[(1.0, 3.0, "Dog")]]
    assert event_based_f1(ref, est, classes=["Dog"]) == pytest.approx(0.5)


def test_class_in_neither_is_left_out_of_the_macro_average_with_a_warning():
    ref, est = [[(1.0, 3.0, "Dog")]], [[(1.0, 3.0, "Dog")]]
    with pytest.warns(UndefinedMetricWarning, match="Cat"):
        assert event_based_f1(ref, est, classes=["Cat", "Dog"]) == 1.0


def test_evaluate_scores_a_class_the_reference_lacks(tmp_path, capsys):
    """Check `evaluate` on a reference subset that lacks an output class
    exits 0 and counts that class's events as false positives."""
    ref, pred = tmp_path / "ref.tsv", tmp_path / "pred.tsv"
    ref.write_text("filename\tonset\toffset\tevent_label\na.wav\t1.0\t3.0\tDog\n")
    pred.write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t1.0\t3.0\tDog\na.wav\t5.0\t6.0\tFrying\n"
    )
    assert main(["evaluate", str(pred), str(ref), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["event"]["per_class_f1"] == {"Dog": 1.0, "Frying": 0.0}
    assert out["event"]["macro_f1"] == pytest.approx(0.5)


def _fold_lacking_a_class():
    """8 clips of 1 s; class "c" only in the last two, so that the first
    fold of KFold(2) trains without it and is tested with it."""
    rng = np.random.default_rng(0)
    X = rng.random((8, 32, 8), dtype=np.float32)
    y_weak = [["a"], ["b"]] * 3 + [["a", "c"], ["b", "c"]]
    y_strong = [[(0.0, 0.5, w[0])] + [(0.5, 1.0, "c")] * ("c" in w) for w in y_weak]
    y_strong = [s if i % 2 == 0 else None for i, s in enumerate(y_strong)]
    sed = PseudoLabelSED(
        n_filters=2, n_blocks=1, max_epochs=1, duration=1.0, batch_size=4,
        pseudo_labels=PseudoLabelSchedule(max_iter=1), random_state=0,
    )  # fmt: skip
    return sed, X, y_weak, y_strong


@pytest.mark.parametrize("routing", [False, True])
def test_cross_validation_scores_a_fold_whose_training_lacks_a_class(routing):
    """Check cross_val_score gives finite scores when a test fold holds a
    class that its training fold lacked, with combined labels and with
    metadata routing of y_strong."""
    import sklearn

    sed, X, y_weak, y_strong = _fold_lacking_a_class()
    with (
        warnings.catch_warnings(),
        sklearn.config_context(enable_metadata_routing=routing),
    ):
        warnings.simplefilter("error", UserWarning)  # no "Scoring failed"
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if routing:
            scores = cross_val_score(
                sed, X, y_weak, scoring=event_f1_scorer, cv=KFold(2),
                params={"y_strong": y_strong},
            )  # fmt: skip
        else:
            y = combine_labels(y_weak, y_strong)
            scores = cross_val_score(sed, X, y, scoring=event_f1_scorer, cv=KFold(2))
    assert np.isfinite(scores).all()


def test_tuned_postprocessing_cv_learns_every_class_before_splitting():
    sed, X, y_weak, y_strong = _fold_lacking_a_class()
    tuned = TunedPostprocessingCV(
        sed, cv=KFold(2), thresholds=(0.3, 0.5), median_filters=(0.0,)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        tuned.fit(X, y_weak, y_strong)
    assert list(tuned.classes_) == ["a", "b", "c"]
    assert tuned.threshold_.shape == (3,)
    assert list(tuned.estimator_.classes_) == ["a", "b", "c"]


def test_psds_on_a_subset_without_every_class_warns_and_scores():
    pytest.importorskip("sed_scores_eval")
    from sklearn_sed.metrics.psds import psds_score

    frames = np.zeros((2, 40, 3))
    frames[:, 10:20, 0] = 1.0
    ref = [[(1.0, 2.0, "a")], [(1.0, 2.0, "a")]]
    with pytest.warns(UserWarning, match=r"\['b', 'c'\] have none"):
        value = psds_score(frames, ref, classes=["a", "b", "c"], duration=4.0)
    assert 0.9 <= value <= 1.0
    # PSDS2 over one class: no cross-triggers (sed_scores_eval fails on them).
    with pytest.warns(UserWarning, match="have none"):
        value = psds_score(
            frames, ref, classes=["a", "b", "c"], duration=4.0, scenario=2
        )
    assert 0.9 <= value <= 1.0
    with pytest.raises(ValueError, match="PSDS needs reference events"):
        psds_score(frames, [[], []], classes=["a", "b", "c"], duration=4.0)
    with pytest.raises(ValueError, match=r"no column for \['d'\]"):
        psds_score(
            frames, [[(1.0, 2.0, "d")]] * 2, classes=["a", "b", "c"], duration=4.0
        )


# Other first-use traps.


def test_unseeded_fit_with_a_checkpoint_dir_resumes_on_rerun(tmp_path, tiny_dataset):
    """Check a fit with random_state=None records the seed it drew, so that
    the same fit again resumes from its checkpoint (same predictions, no
    'belongs to a training with other parameters' error)."""
    d = tiny_dataset
    params = dict(
        n_filters=2, n_blocks=1, max_epochs=1, duration=2.0, batch_size=16,
        pseudo_labels=PseudoLabelSchedule(max_iter=1),
        checkpoint_dir=str(tmp_path), random_state=None,
    )  # fmt: skip
    first = PseudoLabelSED(**params).fit(
        d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    )
    again = PseudoLabelSED(**params).fit(
        d["F"][:16], d["y_weak"][:16], d["y_strong"][:16]
    )
    np.testing.assert_array_equal(
        first.predict_frames(d["F_test"][:4]), again.predict_frames(d["F_test"][:4])
    )
    assert json.loads((tmp_path / "seed.json").read_text())["seed"] >= 0


def test_events_of_a_short_recording_end_at_its_end(fitted_pipeline, tmp_path):
    """Check predict_events on a 1 s waveform and file (the model's clips are
    2 s) returns no event past 1 s."""
    fitted_pipeline = copy.deepcopy(fitted_pipeline)
    fitted_pipeline[-1].set_params(decoder=Decoder(threshold=0.0))  # every frame on
    sr = fitted_pipeline[0].sr
    y = (0.1 * np.random.default_rng(0).standard_normal(sr)).astype(np.float32)
    path = tmp_path / "short.wav"
    sf.write(path, y, sr)
    for events in fitted_pipeline.predict_events([y, str(path)]):
        assert events, "a threshold of 0 detects every class"
        assert max(offset for _, offset, _ in events) <= 1.0


def test_loading_a_model_trained_with_compile_says_nothing_of_compiling(tmp_path):
    from sklearn_sed.io import save

    sed = PseudoLabelSED(n_filters=4, n_blocks=1, duration=1.0, compile=True)
    rng = np.random.default_rng(0)
    X = rng.random((4, 32, 8), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sed.set_params(max_epochs=1, pseudo_labels=None).fit(
            X, [["a"], ["b"]] * 2, [[(0.0, 0.5, "a")], [(0.5, 1.0, "b")]] * 2
        )
    save(sed, tmp_path / "m.sed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sklearn_sed.load(tmp_path / "m.sed").predict_frames(X)


def test_optimizer_by_name_works_in_python():
    rng = np.random.default_rng(0)
    X = rng.random((4, 32, 8), dtype=np.float32)
    sed = PseudoLabelSED(
        n_filters=2, n_blocks=1, duration=1.0, max_epochs=1, pseudo_labels=None,
        optimizer="adam",
    )  # fmt: skip
    sed.fit(X, [["a"], ["b"]] * 2, [[(0.0, 0.5, "a")], [(0.5, 1.0, "b")]] * 2)
    assert type(sed.net_.optimizer_).__name__ == "Adam"
    with pytest.raises(ValueError, match="optimizer"):
        PseudoLabelSED(optimizer="adamm").fit(X, [["a"]] * 4)


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks a machine without CUDA"
)
def test_load_on_cuda_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        sklearn_sed.load(tmp_path / "any.sed", device="cuda")


def test_predict_and_evaluate_print_no_library_warning(fitted_pipeline, tmp_path):
    """Check `predict --scores-dir` and `evaluate --scores-dir`, each in a
    fresh interpreter, write nothing to stderr: no pkg_resources
    deprecation (dcase_util, through sed_eval and sed_scores_eval), no word
    of compiling; and that evaluate prints its table with PSDS."""
    pytest.importorskip("sed_scores_eval")
    model, wav = tmp_path / "m.sed", tmp_path / "x.wav"
    events, scores = tmp_path / "e.tsv", tmp_path / "scores"
    sklearn_sed.save(fitted_pipeline, model)
    rng = np.random.default_rng(0)
    sf.write(wav, 0.1 * rng.standard_normal(16000).astype(np.float32), 16000)
    code = "import sys; from sklearn_sed.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["predict", str(model), str(wav), "--output", str(events)]
    proc = _child(code, *argv, "--scores-dir", str(scores))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    ref = tmp_path / "ref.tsv"
    classes = fitted_pipeline[-1].classes_
    ref.write_text(
        "filename\tonset\toffset\tevent_label\n"
        + "".join(f"x.wav\t0.1\t0.5\t{c}\n" for c in classes)
    )
    proc = _child(code, "evaluate", str(events), str(ref), "--scores-dir", str(scores))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "PSDS1" in proc.stdout
    assert "event-based F1" in proc.stdout
