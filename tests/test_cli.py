import json
import os

import numpy as np
import pytest
import sed_eval
import soundfile as sf

import sklearn_sed
from sklearn_sed import Decoder
from sklearn_sed.cli.main import main
from sklearn_sed.datasets import make_domestic_soundscapes, read_strong_tsv

SETS = [
    "sr=16000",
    "duration=2.0",
    "n_fft=512",
    "win_length=320",
    "hop_length=125",
    "n_mels=32",
    "fmax=8000",
    "pseudolabelsed__duration=2.0",
    "n_filters=4",
    "n_blocks=1",
    "max_epochs=3",
    "pseudo_labels__max_iter=1",
    "batch_size=8",
    "lr=0.01",
    "random_state=0",
    "verbose=0",
    "logmelextractor__verbose=0",
    "n_jobs=1",
]


@pytest.fixture(scope="module")
def desed_dir(tmp_path_factory):
    """A DESED-layout folder with WAV files and TSVs (do not mutate)."""
    root = tmp_path_factory.mktemp("desed")
    X, y_weak, y_strong = make_domestic_soundscapes(
        12, duration=2.0, sr=16000, n_classes=2, random_state=0
    )
    strong = ["filename\tonset\toffset\tevent_label"]
    weak = ["filename\tevent_labels"]
    for i, (x, w, s) in enumerate(zip(X, y_weak, y_strong, strict=True)):
        name = f"clip{i}.wav"
        sf.write(root / name, x, 16000, subtype="PCM_16")
        if s is None:
            weak.append(f"{name}\t{','.join(w)}")
        elif s:
            strong += [f"{name}\t{a}\t{b}\t{c}" for a, b, c in s]
        else:
            strong.append(f"{name}\t\t\t")
    (root / "strong.tsv").write_text("\n".join(strong) + "\n")
    (root / "weak.tsv").write_text("\n".join(weak) + "\n")
    return root


def _train_argv(desed_dir, *extra):
    """`sklearn-sed train` on the DESED folder with the SETS settings."""
    argv = [
        "train",
        "--audio-dir",
        str(desed_dir),
        "--strong-tsv",
        str(desed_dir / "strong.tsv"),
        "--weak-tsv",
        str(desed_dir / "weak.tsv"),
        *extra,
    ]
    for s in SETS:
        argv += ["--set", s]
    return argv


@pytest.fixture(scope="module")
def trained_model(desed_dir):
    model = desed_dir / "model.sed"
    valid = ["--valid-tsv", str(desed_dir / "strong.tsv")]
    assert main(_train_argv(desed_dir, *valid, "--output", str(model))) == 0
    return model


def test_train_rerun_with_checkpoint_dir_resumes_instead_of_retraining(
    desed_dir, tmp_path, monkeypatch
):
    """Check that rerunning `train --checkpoint-dir` after a finished run trains
    no epoch again (it resumes from the last checkpoint) and writes a model
    with the same predictions."""
    import skorch

    argv = _train_argv(desed_dir, "--checkpoint-dir", str(tmp_path / "ckpt"))
    epochs, run_single_epoch = [], skorch.NeuralNet.run_single_epoch

    def counting(self, *args, training, **kwargs):
        if training:
            epochs.append(1)
        return run_single_epoch(self, *args, training=training, **kwargs)

    monkeypatch.setattr(skorch.NeuralNet, "run_single_epoch", counting)
    assert main([*argv, "--output", str(tmp_path / "first.sed")]) == 0
    assert len(epochs) == 4  # 3 stage-1 epochs + 1 pseudo-label iteration
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    epochs.clear()
    assert main([*argv, "--output", str(tmp_path / "second.sed")]) == 0
    assert epochs == []
    audio = [str(desed_dir / f"clip{i}.wav") for i in range(4)]
    first = sklearn_sed.load(tmp_path / "first.sed").predict_frames(audio)
    second = sklearn_sed.load(tmp_path / "second.sed").predict_frames(audio)
    np.testing.assert_array_equal(first, second)


def test_train_with_a_crnn_teacher_trains_it_first_and_resumes_both(
    desed_dir, tmp_path, monkeypatch
):
    """Check `train --teacher crnn`: a CRNN of the student's settings (as many
    epochs as both stages) trains before the student, both checkpoint in
    their own folders, a rerun trains nothing, and the model file holds the
    student only."""
    import skorch

    from sklearn_sed.networks.crnn import CRNN
    from sklearn_sed.training.net import bare_module

    ckpt = tmp_path / "ckpt"
    argv = _train_argv(desed_dir, "--teacher", "crnn", "--checkpoint-dir", str(ckpt))
    argv += ["--set", "compile=False"]  # the teacher takes it too: seconds
    modules, run_single_epoch = [], skorch.NeuralNet.run_single_epoch

    def counting(self, *args, training, **kwargs):
        if training:
            modules.append(type(bare_module(self)).__name__)
        return run_single_epoch(self, *args, training=training, **kwargs)

    monkeypatch.setattr(skorch.NeuralNet, "run_single_epoch", counting)
    assert main([*argv, "--output", str(tmp_path / "m.sed")]) == 0
    assert modules == ["CRNN"] * 4 + ["ResNetSED"] * 4
    assert (ckpt / "checkpoint.pt").is_file()
    assert (ckpt / "teacher" / "checkpoint.pt").is_file()
    modules.clear()
    assert main([*argv, "--output", str(tmp_path / "again.sed")]) == 0
    assert modules == []
    model = sklearn_sed.load(tmp_path / "m.sed")
    assert model[-1].pseudo_labels.teacher is None
    assert not isinstance(model[-1].net_.module_, CRNN)


def test_train_recipe_sets_the_teacher_unless_teacher_says_otherwise(tmp_path):
    """Check `--recipe cpu_teacher` trains with the recipe's CRNN teacher,
    built after --set (it takes the student's seed and epochs), and that
    `--teacher none` turns it off while `--teacher crnn` adds one to "cpu"."""
    from sklearn_sed.cli.main import build_parser
    from sklearn_sed.cli.train import _train_pipeline
    from sklearn_sed.networks.crnn import CRNN

    def sed_of(*extra):
        argv = ["train", "--strong-tsv", "s.tsv", "--output", "m.sed", *extra]
        return _train_pipeline(build_parser().parse_args(argv))[-1]

    sed = sed_of("--recipe", "cpu_teacher", "--set", "random_state=4")
    teacher = sed.pseudo_labels.teacher
    assert teacher.module.func is CRNN
    assert (teacher.random_state, teacher.max_epochs) == (4, 14)
    assert sed.pseudo_labels.weighting == "keep_strong"
    off = sed_of("--recipe", "cpu_teacher", "--teacher", "none")
    assert off.pseudo_labels.teacher is None
    assert sed_of().pseudo_labels.teacher is None
    assert sed_of("--teacher", "crnn").pseudo_labels.teacher.max_epochs == 14  # 10 + 4
    longer = sed_of("--teacher", "crnn", "--set", "pseudo_labels__max_iter=6")
    assert longer.pseudo_labels.teacher.max_epochs == 16


def test_train_writes_a_model(trained_model, capsys):
    """Check train saves a loadable pipeline."""

    pipe = sklearn_sed.load(trained_model)
    assert pipe[-1].max_epochs == 3
    assert pipe[0].n_mels == 32


def test_predict_long_recording_in_windows(trained_model, desed_dir, tmp_path):
    """Check a recording longer than the clip is predicted in windows and its
    events lie inside the recording."""
    x = np.concatenate([sf.read(desed_dir / f"clip{i}.wav")[0] for i in range(4)])
    long = tmp_path / "long.wav"
    sf.write(long, x, 16000)
    out = tmp_path / "events.tsv"
    assert main(["predict", str(trained_model), str(long), "--output", str(out)]) == 0
    events = read_strong_tsv(out, classes=None)["long.wav"]
    for onset, offset, _ in events:
        assert 0 <= onset < offset <= 8.0 + 1e-6


def test_predict_bfloat16_runs_the_network_in_bfloat16(
    trained_model, desed_dir, tmp_path, monkeypatch
):
    """Check predict --bfloat16 asks the estimator for bfloat16 inference (and
    plain predict for float32), and writes the events of every file."""
    from sklearn_sed import estimator

    seen, forward = [], estimator._forward

    def spy(net, X, indices, batch_size, dtype="float32", **kwargs):
        seen.append(dtype)
        return forward(net, X, indices, batch_size, dtype=dtype, **kwargs)

    monkeypatch.setattr(estimator, "_forward", spy)
    clips = [str(desed_dir / f"clip{i}.wav") for i in range(4)]
    for flag, dtype in (([], "float32"), (["--bfloat16"], "bfloat16")):
        seen.clear()
        out = tmp_path / f"{dtype}.tsv"
        argv = ["predict", str(trained_model), *clips, "--output", str(out), *flag]
        assert main(argv) == 0
        assert seen
        assert set(seen) == {dtype}
        assert out.read_text().startswith("filename\tonset\toffset\tevent_label")


def test_predict_file_frames_cover_whole_recording(trained_model, tmp_path):
    """Check the stitched frame grid covers the whole 6 s recording (3 windows)."""

    from sklearn_sed.inference import predict_file_frames

    pipe = sklearn_sed.load(trained_model)
    sr = 16000
    x = np.zeros(sr * 6, np.float32)
    path = tmp_path / "x.wav"
    sf.write(path, x, sr)
    probs, frame_sec, length = predict_file_frames(pipe, path)
    assert length == pytest.approx(6.0)
    assert probs.shape == (int(np.ceil(6.0 / frame_sec)), len(pipe[-1].classes_))


def test_predict_skip_errors(trained_model, desed_dir, tmp_path, capsys):
    """Check unreadable files fail the run, or are skipped with --skip-errors."""
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    out = tmp_path / "e.tsv"
    good = str(desed_dir / "clip0.wav")
    assert (
        main(["predict", str(trained_model), str(bad), good, "--output", str(out)]) == 2
    )
    assert "could not be decoded" in capsys.readouterr().err
    assert (
        main(
            [
                "predict",
                str(trained_model),
                str(bad),
                good,
                "--output",
                str(out),
                "--skip-errors",
            ]
        )
        == 0
    )
    assert list(read_strong_tsv(out, classes=None)) == ["clip0.wav"]


def test_evaluate_equals_sed_eval_directly(desed_dir, tmp_path, capsys):
    """Check evaluate's figures equal sed_eval's on the same files."""
    ref = read_strong_tsv(desed_dir / "strong.tsv", classes=None)
    pred = {k: [(a + 0.1, b, c) for a, b, c in v] for k, v in ref.items()}
    from sklearn_sed.datasets import write_events_tsv

    write_events_tsv(tmp_path / "p.tsv", pred)
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "p.tsv"),
                str(desed_dir / "strong.tsv"),
                "--json",
            ]
        )
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    classes = sorted({e[2] for v in ref.values() for e in v})
    m = sed_eval.sound_event.EventBasedMetrics(
        classes,
        t_collar=0.2,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    pred_read = read_strong_tsv(tmp_path / "p.tsv", classes=None)
    for name, evs in ref.items():
        m.evaluate(
            [dict(filename=name, onset=a, offset=b, event_label=c) for a, b, c in evs],
            [
                dict(filename=name, onset=a, offset=b, event_label=c)
                for a, b, c in pred_read[name]
            ],
        )
    r = m.results()
    assert got["event"]["macro_f1"] == r["class_wise_average"]["f_measure"]["f_measure"]
    assert got["event"]["micro_f1"] == r["overall"]["f_measure"]["f_measure"]


def test_plot_writes_png(trained_model, desed_dir, tmp_path):
    """Check plot writes a PNG figure."""
    out = tmp_path / "fig.png"
    assert (
        main(
            [
                "plot",
                str(trained_model),
                str(desed_dir / "clip0.wav"),
                "--output",
                str(out),
                "--reference",
                str(desed_dir / "strong.tsv"),
            ]
        )
        == 0
    )
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["evaluate", "missing.tsv", "missing.tsv"], "does not exist"),
        (["predict", "nomodel.sed", "x.wav", "--output", "o.tsv"], "does not exist"),
    ],
)
def test_user_errors_are_one_line(argv, match, capsys, tmp_path, monkeypatch):
    """Check user errors print one line and exit with status 2."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert match in err
    assert "\n" not in err
    assert "Traceback" not in err


def test_bad_set_is_one_line(desed_dir, capsys):
    """Check a bad --set is reported clearly."""
    assert (
        main(
            [
                "train",
                "--audio-dir",
                str(desed_dir),
                "--strong-tsv",
                str(desed_dir / "strong.tsv"),
                "--output",
                "x.sed",
                "--set",
                "nonsense=1",
            ]
        )
        == 2
    )
    assert "unknown parameter" in capsys.readouterr().err


def test_train_records_validation_f1_per_epoch(trained_model):
    """Check train's per-epoch table has a validation F1 column, and the saved
    model does not carry the validation data."""

    pipe = sklearn_sed.load(trained_model)
    f1 = pipe[-1].net_.history[:, "valid_event_f1"]
    assert len(f1) == 3 + 1  # 3 stage-1 epochs, 1 pseudo-label iteration
    assert all(0.0 <= v <= 1.0 for v in f1)
    # The safe format keeps no training-time callback, hence no validation data.
    assert "validation" not in dict(pipe[-1].net_.callbacks_)
    assert 1 <= pipe[-1].best_epoch_ <= 4
    assert f1[pipe[-1].best_epoch_ - 1] == max(f1)


def test_train_and_python_recipe_give_the_same_model(trained_model, desed_dir):
    """`sklearn-sed train` (default recipe "cpu", a validation TSV) and the
    same recipe in Python give the same predictions and tuned settings."""

    from sklearn_sed import LogMelExtractor, make_detector
    from sklearn_sed.cli.settings import parse_set
    from sklearn_sed.datasets import load_desed
    from sklearn_sed.pipeline import make_pipeline

    X, y_weak, y_strong = load_desed(
        desed_dir, desed_dir / "strong.tsv", desed_dir / "weak.tsv"
    )
    ref = read_strong_tsv(desed_dir / "strong.tsv")
    X_val = [str(desed_dir / name) for name in ref]
    # The command line's rule: a bare name goes to every step that has it; a
    # step prefix names the step.
    sed_names = set(make_detector("cpu").get_params())
    ext_names = set(LogMelExtractor().get_params())
    ext_params, sed_params = {}, {}
    for key, value in parse_set(SETS).items():
        step, _, name = key.partition("__")
        if step not in ("logmelextractor", "pseudolabelsed"):
            step, name = "", key
        if step == "logmelextractor" or (not step and name in ext_names):
            ext_params[name] = value
        if step == "pseudolabelsed" or (not step and name in sed_names):
            sed_params[name] = value
    ext = LogMelExtractor(**ext_params)
    sed = make_detector("cpu", **sed_params)
    sed.fit(
        ext.fit_transform(X),
        y_weak,
        y_strong,
        X_val=ext.transform(X_val),
        y_val=list(ref.values()),
    )
    python = make_pipeline(ext, sed)
    cli = sklearn_sed.load(trained_model)
    assert cli[-1].get_params()["optimizer"] is sed.optimizer
    np.testing.assert_array_equal(cli[-1].threshold_, sed.threshold_)
    np.testing.assert_allclose(
        cli.predict_frames(X_val[:3]), python.predict_frames(X_val[:3]), atol=1e-6
    )


@pytest.mark.slow  # memory; runs in CI (make test)
def test_long_file_memory_is_bounded(trained_model, tmp_path):
    """Check peak memory of windowed prediction does not grow with the file:
    a 300 s file peaks within a small margin of a 30 s one."""
    import tracemalloc

    from sklearn_sed.inference import predict_file_frames

    pipe = sklearn_sed.load(trained_model)
    rng = np.random.default_rng(0)
    peaks = {}
    for seconds in (30, 300):
        path = tmp_path / f"{seconds}.wav"
        sf.write(path, rng.normal(size=16000 * seconds) * 0.05, 16000, subtype="PCM_16")
        tracemalloc.start()
        _probs, _, _ = predict_file_frames(pipe, path)
        peaks[seconds] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # Ten times the audio (19 MB more as float32) adds less than 4 MB of peak:
    # only the frame-probability grid grows with the file.
    assert peaks[300] < peaks[30] + 4e6, peaks


class _EnvelopeFeatures:
    """Stand-in extractor: per output frame, the mean absolute amplitude."""

    sr = 1000

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        out = []
        for y in X:
            y = np.pad(np.asarray(y, float), (0, max(0, 2000 - len(y))))[:2000]
            out.append(np.abs(y).reshape(20, 100).mean(axis=1))
        return np.stack(out)


class _EnvelopeDetector:
    """Stand-in detector whose frame probability is the envelope itself."""

    duration, n_frames_out_, classes_ = 2.0, 20, np.array(["tone"])
    threshold, median_filter_sec, order = 0.5, 0.0, "threshold_first"

    def fit(self, X, y=None):
        return self

    def predict_frames(self, X):
        return np.asarray(X)[:, :, None]

    def decode(self, frame_probs, *, duration=None):
        from sklearn_sed.decoding.decode import decode_events

        return decode_events(
            frame_probs,
            classes=self.classes_,
            duration=duration,
            threshold=self.threshold,
            median_filter_sec=self.median_filter_sec,
            order=self.order,
        )


def test_event_across_window_borders_is_stitched_into_one(tmp_path):
    """Check an event spanning several 2 s windows comes out as one event with
    its true boundaries, from the frame grid averaged over overlapping windows."""
    from sklearn_sed.inference import predict_file_events

    y = np.zeros(10_000)
    y[4_500:6_500] = 1.0  # 4.5 s to 6.5 s: crosses the borders at 5 s and 6 s
    sf.write(tmp_path / "x.wav", y, 1000, subtype="FLOAT")
    model = [_EnvelopeFeatures(), _EnvelopeDetector()]

    class Model(list):
        steps = [("features", model[0]), ("sed", model[1])]

        def __getitem__(self, key):
            if isinstance(key, slice):
                return model[0]
            return list.__getitem__(self, key)

    events = predict_file_events(Model(model), tmp_path / "x.wav")
    assert events == [(pytest.approx(4.5), pytest.approx(6.5), "tone")]


def _pickle_with_payload(path, marker):
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps(Payload()))
    return path


def test_predict_refuses_a_pickle_and_never_runs_it(desed_dir, tmp_path, capsys):
    """Check predict reads the safe format only: a crafted pickle is refused
    without --allow-pickle and its payload does not run."""
    marker = tmp_path / "pwned"
    evil = _pickle_with_payload(tmp_path / "model.joblib", marker)
    argv = ["predict", str(evil), str(desed_dir / "clip0.wav")]
    assert main([*argv, "--output", str(tmp_path / "o.tsv")]) == 2
    assert "--allow-pickle" in capsys.readouterr().err
    assert not marker.exists()
    assert main(["plot", str(evil), str(desed_dir / "clip0.wav"), "--output",
                 str(tmp_path / "f.png")]) == 2  # fmt: skip
    assert not marker.exists()


def test_predict_reads_a_pickle_with_allow_pickle(trained_model, desed_dir, tmp_path):
    """Check --allow-pickle still reads a joblib model the user made."""
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump(sklearn_sed.load(trained_model), path)
    out = tmp_path / "o.tsv"
    wav = str(desed_dir / "clip0.wav")
    argv = ["predict", str(path), wav, "--output", str(out), "--allow-pickle"]
    assert main(argv) == 0
    assert "clip0.wav" in read_strong_tsv(out, classes=None)


def test_train_writes_the_safe_format(trained_model):
    """Check the model train writes is the safe ZIP format, not a pickle."""
    import zipfile

    assert zipfile.is_zipfile(trained_model)
    with zipfile.ZipFile(trained_model) as zf:
        assert "sklearn_sed.json" in zf.namelist()


def test_predict_keys_results_by_path_relative_to_the_folder(
    trained_model, desed_dir, tmp_path
):
    """Check sub/a/x.wav and sub/b/x.wav give two rows, not one overwritten."""
    import shutil

    for name in ("a", "b"):
        (tmp_path / "sub" / name).mkdir(parents=True)
        shutil.copy(desed_dir / "clip0.wav", tmp_path / "sub" / name / "x.wav")
    out = tmp_path / "o.tsv"
    argv = ["predict", str(trained_model), str(tmp_path / "sub"), "--output", str(out)]
    assert main(argv) == 0
    assert set(read_strong_tsv(out, classes=None)) == {"a/x.wav", "b/x.wav"}


def test_predict_refuses_two_files_of_one_name(trained_model, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name in ("a", "b"):
        (tmp_path / name / "x.wav").write_bytes(b"")
    files = [str(tmp_path / "a" / "x.wav"), str(tmp_path / "b" / "x.wav")]
    argv = ["predict", str(trained_model), *files, "--output", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "would both be reported" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["model", "audio", "tsv"])
def test_output_that_is_an_input_is_refused_before_any_work(
    trained_model, desed_dir, tmp_path, target, capsys
):
    """Check --output equal to an input (the model, an audio file, the strong
    TSV) exits 2 and leaves the input byte for byte as it was."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(desed_dir, work)
    model = work / "model.sed"
    shutil.copy(trained_model, model)
    victim = {"model": model, "audio": work / "clip0.wav", "tsv": work / "strong.tsv"}
    victim = victim[target]
    before = victim.read_bytes()
    if target == "tsv":
        argv = [*_train_argv(work), "--output", str(victim)]
    else:
        argv = ["predict", str(model), str(work / "clip0.wav"), "--output", str(victim)]
    assert main(argv) == 2
    assert "would be overwritten" in capsys.readouterr().err
    assert victim.read_bytes() == before


def _one_line_error(argv, capsys, status=2):
    assert main(argv) == status
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        pytest.param(
            "device=cuda",
            "no CUDA device",
            marks=pytest.mark.skipif(
                __import__("torch").cuda.is_available(), reason="CUDA present"
            ),
        ),
        ("device=meta", "cannot train"),
        ("callbacks=[1]", "cannot be set from the command line"),
        ("lr=" + "+".join(["1"] * 20000), "too deeply nested"),
        ("lr=-1", "lr"),
        ("optimizer=nonsense", "unknown optimizer"),
    ],
)
def test_bad_settings_are_one_line_before_extraction(
    desed_dir, tmp_path, capsys, monkeypatch, setting, match
):
    """Check bad --set values are one-line errors, raised before any audio is
    read (extraction is made to fail loudly if reached)."""
    from sklearn_sed import LogMelExtractor

    def not_reached(*args, **kwargs):
        raise AssertionError("features were extracted before the check")

    monkeypatch.setattr(LogMelExtractor, "fit_transform", not_reached)
    argv = [*_train_argv(desed_dir), "--set", setting, "--output", str(tmp_path / "m")]
    assert match in _one_line_error(argv, capsys)


def test_paths_of_the_wrong_kind_are_one_line(
    trained_model, desed_dir, tmp_path, capsys
):
    """Check outputs and folders of the wrong kind are one-line errors."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    wav = str(desed_dir / "clip0.wav")
    cases = [
        ([*_train_argv(desed_dir), "--output", str(tmp_path)], "is a folder"),
        ([*_train_argv(desed_dir), "--output", str(tmp_path / "no" / "m.sed")],
         "does not exist"),
        ([*_train_argv(desed_dir), "--output", str(tmp_path / "m.sed"),
          "--checkpoint-dir", str(a_file)], "is a file"),
        (["demo", "--output-dir", str(a_file)], "is a file"),
        (["predict", str(trained_model), wav, "--output", str(tmp_path)],
         "is a folder"),
        (["predict", str(tmp_path), wav, "--output", str(tmp_path / "o.tsv")],
         "is a folder"),
        (["predict", str(trained_model), wav, "--output", str(tmp_path / "o.tsv"),
          "--scores-dir", str(a_file)], "is a file"),
    ]  # fmt: skip
    for argv, match in cases:
        assert match in _one_line_error(argv, capsys), argv


def test_shared_setting_reaches_every_step():
    """Check a bare --set key that two steps own (duration) reaches both."""
    from sklearn_sed import LogMelExtractor, PseudoLabelSED
    from sklearn_sed.cli.settings import apply_set, parse_set
    from sklearn_sed.pipeline import make_pipeline

    pipe = make_pipeline(LogMelExtractor(), PseudoLabelSED())
    apply_set(pipe, parse_set(["duration=1.0"]))
    assert pipe[0].duration == 1.0
    assert pipe[-1].duration == 1.0


def test_optimizer_is_reachable_by_name():
    import torch

    from sklearn_sed.cli.settings import parse_set

    assert parse_set(["optimizer=adam"])["optimizer"] is torch.optim.Adam
    assert parse_set(["optimizer=torch.optim.SGD"])["optimizer"] is torch.optim.SGD


def test_non_utf8_tsv_names_the_file_and_line(desed_dir, tmp_path, capsys):
    bad = tmp_path / "strong.tsv"
    bad.write_bytes(
        b"filename\tonset\toffset\tevent_label\nclip0.wav\t0\t1\t\xff\xfe\n"
    )
    argv = ["evaluate", str(bad), str(bad)]
    err = _one_line_error(argv, capsys)
    assert "strong.tsv" in err
    assert "UTF-8" in err


def test_evaluate_json_is_valid_json_without_nan(desed_dir, tmp_path, capsys):
    """Check a class never output scores 0 (not nan%) and --json is strict JSON."""
    ref = read_strong_tsv(desed_dir / "strong.tsv")
    pred = tmp_path / "pred.tsv"
    from sklearn_sed.datasets import write_events_tsv

    write_events_tsv(pred, {name: [] for name in ref})  # nothing detected
    assert main(["evaluate", str(pred), str(desed_dir / "strong.tsv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=_refuse_constant)
    assert all(v == 0.0 for v in out["event"]["per_class_f1"].values())
    assert main(["evaluate", str(pred), str(desed_dir / "strong.tsv")]) == 0
    assert "nan" not in capsys.readouterr().out


def _refuse_constant(name):
    raise AssertionError(f"{name} is not JSON")


def test_pipeline_and_make_pipeline_are_top_level():
    import sklearn_sed.pipeline

    assert sklearn_sed.Pipeline is sklearn_sed.pipeline.Pipeline
    assert sklearn_sed.make_pipeline is sklearn_sed.pipeline.make_pipeline


def test_demo_writes_a_safe_model_that_predict_reads(demo_run, tmp_path):
    """Check the main job end to end at a tiny size: its model is a .sed file
    (even when a small training set misses classes) that predict reads."""
    proc, out = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 2
    model = sklearn_sed.load(out / "model.sed")
    assert len(model[-1].classes_) == 10
    wav = tmp_path / "x.wav"
    sf.write(wav, 0.1 * np.sin(np.arange(44100 * 3) * 0.05), 44100)
    argv = [
        "predict",
        str(out / "model.sed"),
        str(wav),
        "--output",
        str(tmp_path / "e"),
    ]
    assert main(argv) == 0


def test_file_prediction_decodes_with_the_tuned_settings(trained_model, desed_dir):
    """Check `predict` (predict_file_events) decodes like the estimator: with
    the per-class settings tuned at `train`, not the bare parameters."""
    from sklearn_sed.inference import predict_file_events

    pipe = sklearn_sed.load(trained_model)
    sed = pipe[-1]
    assert sed.decoder.tune
    assert sed.validation_f1_ is not None
    sed.threshold_ = np.full(len(sed.classes_), 0.01)  # tuned: almost anything
    sed.median_filter_sec_ = np.zeros(len(sed.classes_))
    sed.low_threshold_ = sed.threshold_.copy()  # no hysteresis
    # The parameter: almost nothing.
    sed.set_params(decoder=Decoder(threshold=0.999, tune=True))
    wav = str(desed_dir / "clip0.wav")
    events = predict_file_events(pipe, wav)
    assert events
    assert events == pipe.predict_events([wav])[0]


def test_train_reads_desed_layout_with_a_folder_per_tsv(desed_dir, tmp_path, capsys):
    """Check DESED's own layout (an audio folder per TSV) trains, and that
    audio missing from a TSV's folder is one line naming the flag to fix."""
    import shutil

    strong = read_strong_tsv(desed_dir / "strong.tsv")
    weak_names = [
        line.split("\t")[0]
        for line in (desed_dir / "weak.tsv").read_text().splitlines()[1:]
    ]
    layout = {"strong": list(strong), "weak": weak_names}
    for kind, names in layout.items():
        (tmp_path / "audio" / kind).mkdir(parents=True)
        for name in names:
            shutil.copy(desed_dir / name, tmp_path / "audio" / kind / name)
    argv = [
        "train",
        "--strong-tsv",
        str(desed_dir / "strong.tsv"),
        "--weak-tsv",
        str(desed_dir / "weak.tsv"),
        "--strong-audio-dir",
        str(tmp_path / "audio" / "strong"),
        "--weak-audio-dir",
        str(tmp_path / "audio" / "weak"),
        "--valid-tsv",
        str(desed_dir / "strong.tsv"),
        "--valid-audio-dir",
        str(tmp_path / "audio" / "strong"),
        "--output",
        str(tmp_path / "m.sed"),
        *[a for s in [*SETS, "max_epochs=1"] for a in ("--set", s)],
    ]
    assert main(argv) == 0
    assert (tmp_path / "m.sed").is_file()
    capsys.readouterr()
    # One folder for both TSVs: the weak clips are not there.
    wrong = [a for a in argv if a not in ("--weak-audio-dir",)]
    wrong.remove(str(tmp_path / "audio" / "weak"))
    wrong += ["--audio-dir", str(tmp_path / "audio" / "strong")]
    wrong[wrong.index("--output") + 1] = str(tmp_path / "n.sed")
    assert main(wrong) == 2
    err = capsys.readouterr().err.strip()
    assert "weak.tsv" in err
    assert "--weak-audio-dir" in err
    assert "check_audio" not in err
    assert "\n" not in err
    assert not (tmp_path / "n.sed").exists()
    # A TSV without any folder.
    bare = [a for a in argv if "audio" not in a]
    assert main(bare) == 2
    assert "has no audio folder" in capsys.readouterr().err


def test_predict_threshold_and_median_filter_overrides(
    trained_model, desed_dir, tmp_path, capsys
):
    """Check --threshold / --median-filter (global and per class) give the
    events of the model with those settings, and bad values are one line."""
    from sklearn_sed.inference import predict_file_events

    clips = [str(desed_dir / f"clip{i}.wav") for i in range(4)]
    model = sklearn_sed.load(trained_model)
    sed = model[-1]
    first = str(sed.classes_[0])
    cases = {
        "all": (["--threshold", "0.05", "--median-filter", "0"], [0.05] * 2, [0.0] * 2),
        "one": (
            ["--threshold", f"{first}=0.9"],
            [0.9, float(sed.decoding_settings()[0][1])],
            sed.decoding_settings()[1].tolist(),
        ),
    }
    for name, (flags, thr, med) in cases.items():
        out = tmp_path / f"{name}.tsv"
        argv = ["predict", str(trained_model), *clips, "--output", str(out), *flags]
        assert main(argv) == 0
        expected_model = sklearn_sed.load(trained_model)
        # The model's tuned hysteresis stays, lowered to a threshold below it.
        low = np.minimum(sed.decoding_settings()[2], thr).tolist()
        expected_model[-1].set_params(
            decoder=Decoder(threshold=thr, median_filter_sec=med, low_threshold=low)
        )
        got = read_strong_tsv(out, classes=None)
        n_events = 0
        for path in clips:
            expected = sorted(predict_file_events(expected_model, path))
            written = sorted(got.get(os.path.basename(path), []))
            assert [e[2] for e in written] == [e[2] for e in expected]
            np.testing.assert_allclose(
                [e[:2] for e in written], [e[:2] for e in expected], atol=1e-3
            )
            n_events += len(expected)
        if name == "all":
            assert n_events > 0  # a 0.05 threshold detects something
    capsys.readouterr()
    for flags, match in (
        (["--threshold", "Nope=0.3"], "unknown class 'Nope'"),
        (["--threshold", "high"], "must be a number"),
        (["--threshold", "1.5"], "in [0, 1]"),
        (["--median-filter", "-1"], "lengths must be numbers of seconds in [0, 60]"),
    ):
        argv = [
            "predict",
            str(trained_model),
            clips[0],
            "--output",
            str(tmp_path / "x.tsv"),
        ]
        assert main([*argv, *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err
        assert "\n" not in err


def test_predict_scores_dir_and_evaluate_psds(
    trained_model, desed_dir, tmp_path, capsys
):
    """Check predict --scores-dir writes sed_scores_eval files covering each
    recording, and evaluate --scores-dir reports PSDS1 and PSDS2 equal to
    sed_scores_eval's on those files."""
    pytest.importorskip("sed_scores_eval")
    from sed_scores_eval import intersection_based, io

    from sklearn_sed.metrics.psds import PSDS1

    ref = read_strong_tsv(desed_dir / "strong.tsv", classes=None)
    clips = [str(desed_dir / name) for name in ref]
    scores_dir = tmp_path / "scores"
    out = tmp_path / "events.tsv"
    argv = ["predict", str(trained_model), *clips, "--output", str(out)]
    assert main([*argv, "--scores-dir", str(scores_dir)]) == 0
    files = sorted(p.name for p in scores_dir.iterdir())
    assert files == sorted(os.path.splitext(n)[0] + ".tsv" for n in ref)
    df = io.read_sed_scores(str(scores_dir / files[0]))
    assert df["onset"].iloc[0] == 0.0
    assert df["offset"].iloc[-1] == pytest.approx(2.0)
    capsys.readouterr()
    ev = ["evaluate", str(out), str(desed_dir / "strong.tsv"), "--json"]
    assert main([*ev, "--scores-dir", str(scores_dir)]) == 0
    got = json.loads(capsys.readouterr().out)["psds"]
    scores = {f[:-4]: io.read_sed_scores(str(scores_dir / f)) for f in files}
    truth = {os.path.splitext(k)[0]: v for k, v in ref.items()}
    expected, *_ = intersection_based.psds(
        scores=scores,
        ground_truth=truth,
        audio_durations={k: 2.0 for k in truth},
        **PSDS1,
    )
    assert got["psds1"] == pytest.approx(float(expected))
    assert 0.0 <= got["psds2"] <= 1.0
    assert got["n_files"] == len(ref)
    (scores_dir / files[0]).unlink()
    assert main([*ev, "--scores-dir", str(scores_dir)]) == 2
    assert "have no score file" in capsys.readouterr().err


def test_plot_draws_the_whole_long_file_and_a_span(trained_model, desed_dir, tmp_path):
    """Check plot covers a 6 s recording (three clips of 2 s), not its first
    clip, and --start/--end crop it; a bad span is one line."""
    import matplotlib.image

    x = np.concatenate([sf.read(desed_dir / f"clip{i}.wav")[0] for i in range(3)])
    long = tmp_path / "long.wav"
    sf.write(long, x, 16000)
    for extra in ([], ["--start", "1", "--end", "3.5"]):
        out = tmp_path / f"fig{len(extra)}.png"
        argv = ["plot", str(trained_model), str(long), "--output", str(out), *extra]
        assert main(argv) == 0
        assert matplotlib.image.imread(out).shape[1] > 800
    assert main([*argv[:5], "--start", "5", "--end", "2"]) == 2


def test_plot_detection_keeps_the_backend_and_labels_hz(fitted_sed, tiny_dataset):
    """Check plot_detection leaves the caller's matplotlib backend alone, puts
    Hz on the spectrogram axis, a colour bar on both image panels, a threshold
    mark, and the legend outside the event axes."""
    import matplotlib

    from sklearn_sed.plotting import plot_detection
    from tests.conftest import TINY_FEATURES

    d = tiny_dataset
    before = matplotlib.get_backend()
    sed = fitted_sed
    fig = plot_detection(
        d["F_test"][0],
        sed.predict_frames(d["F_test"][:1])[0],
        sed.predict_events(d["F_test"][:1])[0],
        classes=sed.classes_,
        duration=sed.duration,
        reference=d["y_test"][0],
        threshold=0.5,
        sr=TINY_FEATURES["sr"],
        hop_length=TINY_FEATURES["hop_length"],
        fmax=TINY_FEATURES["fmax"],
    )
    assert matplotlib.get_backend() == before
    spec, _, events, *bars = fig.axes
    assert spec.get_ylabel() == "frequency (Hz)"
    assert len(bars) == 2  # one colour bar per image panel
    assert any(line.get_ydata()[0] == 0.5 for line in bars[1].lines)
    legend = events.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["detected", "reference"]
    fig.draw_without_rendering()  # the legend sits right of the axes, never over events
    box = legend.get_window_extent()
    assert box.x0 >= events.get_window_extent().x1


def test_an_unreadable_model_file_is_reported_as_unreadable(
    trained_model, tmp_path, capsys, monkeypatch
):
    """Check a .sed file that cannot be opened is reported as such, not as a
    possible pickle needing --allow-pickle."""
    import builtins

    real_open = builtins.open

    def denied(file, *args, **kwargs):
        if os.fspath(file) == str(trained_model):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    argv = ["predict", str(trained_model), "x.wav", "--output", str(tmp_path / "e")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot be read (Permission denied)" in err
    assert "pickle" not in err


def test_a_model_file_of_a_bare_detector_is_a_clear_error(
    tiny_dataset, tmp_path, capsys
):
    """Check predict on a model file holding a PseudoLabelSED alone (no
    extractor) says what the command line needs."""
    from sklearn_sed import PseudoLabelSED
    from tests.conftest import FAST_SED

    d = tiny_dataset
    sed = PseudoLabelSED(**FAST_SED).fit(
        d["F"][:12], d["y_weak"][:12], d["y_strong"][:12]
    )
    sklearn_sed.save(sed, tmp_path / "bare.sed")
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(16000, dtype=np.float32), 16000)
    argv = [
        "predict",
        str(tmp_path / "bare.sed"),
        str(wav),
        "--output",
        str(tmp_path / "e"),
    ]
    assert main(argv) == 2
    assert "holds a PseudoLabelSED, not a pipeline" in capsys.readouterr().err


def _copy_of(desed_dir, tmp_path, trained_model=None):
    import shutil

    work = tmp_path / "w"
    shutil.copytree(desed_dir, work)
    if trained_model is not None:
        shutil.copy(trained_model, work / "model.sed")
    return work


@pytest.mark.parametrize("layout", ["audio-dir", "strong-audio-dir"])
def test_train_never_overwrites_a_listed_clip(desed_dir, tmp_path, capsys, layout):
    """Check train --output naming a training clip (listed in a TSV, inside
    the audio folder) exits 2 before any work and leaves the clip as it was."""
    work = _copy_of(desed_dir, tmp_path)
    victim = work / "clip7.wav"
    before = victim.read_bytes()
    argv = [*_train_argv(work), "--output", str(victim)]
    if layout == "strong-audio-dir":
        argv = [a if a != "--audio-dir" else "--strong-audio-dir" for a in argv]
        argv += ["--weak-audio-dir", str(work)]
    assert main(argv) == 2
    assert "would be overwritten" in capsys.readouterr().err
    assert victim.read_bytes() == before
    # A listed clip whose bytes pass for a model file is still an input:
    # the check against the listed clips alone refuses it.
    victim.write_bytes(b"PK\x03\x04" + before[4:])
    before = victim.read_bytes()
    assert main(argv) == 2
    assert "is also an input" in capsys.readouterr().err
    assert victim.read_bytes() == before


def test_outputs_never_replace_a_file_of_another_kind(
    trained_model, desed_dir, tmp_path, capsys
):
    """Check train, predict and plot refuse, before any work, an existing
    --output that is not what they write (a user's notes, a recording)."""
    work = _copy_of(desed_dir, tmp_path, trained_model)
    notes = work / "notes.txt"
    notes.write_text("my notes\n")
    wav = str(work / "clip0.wav")
    for argv in (
        [*_train_argv(work), "--output", str(notes)],
        ["predict", str(work / "model.sed"), wav, "--output", str(notes)],
        ["plot", str(work / "model.sed"), wav, "--output", str(notes)],
    ):
        assert main(argv) == 2
        assert "is not" in capsys.readouterr().err
        assert notes.read_text() == "my notes\n"
    # An earlier run's own output is replaced, as before.
    events = work / "events.tsv"
    assert main(["predict", str(work / "model.sed"), wav, "--output", str(events)]) == 0
    assert main(["predict", str(work / "model.sed"), wav, "--output", str(events)]) == 0


def test_scores_dir_never_overwrites_a_users_file(
    trained_model, desed_dir, tmp_path, capsys
):
    """Check predict --scores-dir refuses, before any work, to write over an
    annotation file of the same name, and over one of two recordings that
    would share a score file."""
    pytest.importorskip("sed_scores_eval")
    work = _copy_of(desed_dir, tmp_path, trained_model)
    annot = tmp_path / "annot"
    annot.mkdir()
    (annot / "clip0.wav").write_bytes((work / "clip0.wav").read_bytes())
    mine = annot / "clip0.tsv"
    mine.write_text("filename\tonset\toffset\tevent_label\nclip0.wav\t0\t1\tDog\n")
    argv = ["predict", str(work / "model.sed"), str(annot), "--output"]
    assert main([*argv, str(tmp_path / "e.tsv"), "--scores-dir", str(annot)]) == 2
    assert "is not a frame-score TSV" in capsys.readouterr().err
    assert mine.read_text().startswith("filename")
    (annot / "clip0.flac").write_bytes(b"")
    mine.unlink()
    assert main([*argv, str(tmp_path / "e.tsv"), "--scores-dir", str(tmp_path)]) == 2
    assert "would both write" in capsys.readouterr().err


def test_predict_follows_symlinked_sub_folders(trained_model, desed_dir, tmp_path):
    """Check a folder given to predict includes the audio of a symlinked
    sub-folder (a loop back is visited once)."""
    work = _copy_of(desed_dir, tmp_path, trained_model)
    top = tmp_path / "top"
    top.mkdir()
    (top / "linked").symlink_to(work, target_is_directory=True)
    (top / "loop").symlink_to(top, target_is_directory=True)
    out = tmp_path / "e.tsv"
    assert (
        main(["predict", str(work / "model.sed"), str(top), "--output", str(out)]) == 0
    )
    listed = read_strong_tsv(out, classes=None)
    assert "linked/clip0.wav" in listed


def test_very_short_files_get_no_zero_length_event(trained_model, tmp_path, capsys):
    """Check a file a few milliseconds long gets no event 0.000-0.000, which
    evaluate would refuse."""
    model = sklearn_sed.load(trained_model)
    model[-1].set_params(decoder=Decoder(threshold=0.0))  # every frame on
    sklearn_sed.save(model, tmp_path / "m.sed")
    wav = tmp_path / "tick.wav"
    sf.write(wav, np.full(4, 0.1, dtype=np.float32), 16000)  # 0.25 ms
    out = tmp_path / "e.tsv"
    assert (
        main(["predict", str(tmp_path / "m.sed"), str(wav), "--output", str(out)]) == 0
    )
    for events in read_strong_tsv(out, classes=None).values():
        for onset, offset, _ in events:
            assert offset > onset


@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "-1"])
def test_absurd_median_filters_are_one_line_errors(
    trained_model, desed_dir, tmp_path, capsys, value
):
    """Check --median-filter inf, nan, 1e300 or -1 is a one-line user error
    (exit 2), not an internal error."""
    argv = ["predict", str(trained_model), str(desed_dir / "clip0.wav")]
    argv += ["--output", str(tmp_path / "e.tsv"), "--median-filter", value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "lengths must be numbers of seconds in [0, 60]" in err
    assert err.count("\n") == 1


def test_evaluate_refuses_an_event_a_trillion_seconds_long(tmp_path, capsys):
    """Check an offset of 1e12 s is refused with the file and line instead of
    allocating a segment grid of terabytes."""
    ref = tmp_path / "ref.tsv"
    ref.write_text("filename\tonset\toffset\tevent_label\na.wav\t0\t1e12\tDog\n")
    assert main(["evaluate", str(ref), str(ref)]) == 2
    assert (
        "ref.tsv:2: onset and offset must lie in [0, 86400] s"
        in capsys.readouterr().err
    )


def test_an_unwritable_output_folder_is_refused_before_training(
    desed_dir, tmp_path, capsys, monkeypatch
):
    """Check an --output folder that exists but cannot be written is refused
    before any work (it was reported after training, naming a temporary
    file)."""
    import skorch

    out = tmp_path / "ro"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode: False if str(p) == str(out) else real_access(p, mode),
    )
    trained = []
    monkeypatch.setattr(skorch.NeuralNet, "fit_loop", lambda *a, **k: trained.append(1))
    assert main([*_train_argv(desed_dir), "--output", str(out / "m.sed")]) == 2
    assert "is not writable" in capsys.readouterr().err
    assert trained == []


def test_a_run_that_processed_nothing_leaves_the_output_as_it_was(
    trained_model, tmp_path, capsys
):
    """Check predict --skip-errors on files that all fail exits 2 and keeps
    the earlier run's output byte for byte (it was emptied)."""
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    out = tmp_path / "prev.tsv"
    out.write_text("filename\tonset\toffset\tevent_label\nx.wav\t1.000\t2.000\tDog\n")
    before = out.read_bytes()
    argv = ["predict", str(trained_model), str(bad), "--output", str(out)]
    assert main([*argv, "--skip-errors"]) == 2
    assert "is unchanged" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_scores_dir_never_overwrites_an_input(
    trained_model, desed_dir, tmp_path, capsys
):
    """Check a score file that would land on an input (here the events TSV of
    an earlier run, given as --output) is refused, naming that input."""
    pytest.importorskip("sed_scores_eval")
    work = _copy_of(desed_dir, tmp_path, trained_model)
    scores = tmp_path / "scores"
    scores.mkdir()
    out = scores / "clip0.tsv"
    out.write_text("filename\tonset\toffset\tevent_label\n")
    before = out.read_bytes()
    argv = ["predict", str(work / "model.sed"), str(work / "clip0.wav")]
    assert main([*argv, "--output", str(out), "--scores-dir", str(scores)]) == 2
    assert "an input" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_train_with_a_validation_tsv_writes_its_figure_beside_the_model(trained_model):
    """`train --valid-tsv` writes MODEL.training.png next to the model file."""
    figure = trained_model.with_suffix(".training.png")
    assert figure.read_bytes()[:4] == b"\x89PNG"
