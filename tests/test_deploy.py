"""Export to ONNX and detection with onnxruntime, without PyTorch: equal
probabilities and events, the same windows for long files, and bad files
refused by name."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sklearn_sed import LogMelExtractor, PseudoLabelSED, make_pipeline
from sklearn_sed.networks import network_factory
from tests.conftest import FAST_SED, TINY_FEATURES

onnx = pytest.importorskip("onnx", reason='pip install "sklearn-sed[onnx]"')
ort = pytest.importorskip("onnxruntime", reason='pip install "sklearn-sed[onnx]"')

from sklearn_sed.deploy import OnnxDetector, export_onnx  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fit(tiny_dataset, **params):
    d = tiny_dataset
    pipe = make_pipeline(
        LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**{**FAST_SED, **params})
    )
    return pipe.fit(d["audio"], d["y_weak"], d["y_strong"])


@pytest.fixture(scope="module", params=["resnet", "crnn"])
def exported(request, tiny_dataset, tmp_path_factory):
    """A fitted pipeline of each network and its ONNX file (do not mutate)."""
    params = {}
    if request.param == "crnn":  # GRU included
        params["module"] = network_factory(
            "crnn", n_filters=4, hidden_size=4, n_mels=TINY_FEATURES["n_mels"]
        )
    pipe = _fit(tiny_dataset, **params)
    path = tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx"
    diff = export_onnx(pipe, path)
    assert diff <= 1e-4
    return pipe, path


def test_onnxruntime_probabilities_equal_torchs(exported, tiny_dataset):
    """The network alone, on the pipeline's own features: within 1e-4."""
    pipe, path = exported
    detector = OnnxDetector(path, batch_size=5)  # several batches
    F = pipe[0].transform(tiny_dataset["audio_test"])
    frames, clips = detector.predict_frames_from_features(F)
    np.testing.assert_allclose(frames, pipe[-1].predict_frames(F), atol=1e-4)
    np.testing.assert_allclose(clips, pipe[-1].predict_proba(F), atol=1e-4)


def test_the_librosa_front_end_equals_the_extractor(exported, tiny_dataset):
    pipe, path = exported
    detector = OnnxDetector(path)
    audio = tiny_dataset["audio_test"]
    F = pipe[0].transform(audio)
    np.testing.assert_allclose(detector.transform(audio), F, atol=1e-4)
    np.testing.assert_allclose(
        detector.predict_frames(audio), pipe.predict_frames(audio), atol=1e-4
    )


def test_events_are_the_pipelines_on_a_test_set(exported, tiny_dataset):
    pipe, path = exported
    detector = OnnxDetector(path)
    audio = tiny_dataset["audio_test"]
    expected = pipe.predict_events(audio)
    assert sum(map(len, expected)) > 0  # the check compares real events
    assert detector.predict_events(audio) == expected
    assert list(detector.classes_) == list(pipe[-1].classes_)


def test_a_long_file_goes_through_the_same_windows(exported, tiny_dataset, tmp_path):
    from sklearn_sed.inference import predict_file_events

    pipe, path = exported
    long = np.concatenate(list(tiny_dataset["audio_test"][:5]))  # 10 s
    wav = tmp_path / "long.wav"
    sf.write(wav, long, TINY_FEATURES["sr"])
    expected = predict_file_events(pipe, wav)
    assert expected
    assert OnnxDetector(path).predict_file_events(wav) == expected


def test_the_detector_runs_where_torch_cannot_be_imported(
    exported, tiny_dataset, tmp_path
):
    pipe, path = exported
    clips = tiny_dataset["audio_test"][:6]
    names = []
    for k, y in enumerate(clips):
        names.append(str(tmp_path / f"c{k}.wav"))
        sf.write(names[-1], y, TINY_FEATURES["sr"], subtype="FLOAT")
    script = (
        "import importlib.abc, json, sys\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'skorch'):\n"
        "            raise ImportError('no PyTorch here')\n"
        "sys.meta_path.insert(0, NoTorch())  # any import of torch fails\n"
        "from sklearn_sed.deploy import OnnxDetector\n"
        f"d = OnnxDetector({str(path)!r})\n"
        f"print(json.dumps(d.predict_events({names!r})))\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    events = [[tuple(e) for e in clip] for clip in json.loads(out.stdout)]
    assert events == pipe.predict_events(names)


def test_export_needs_the_pipeline_and_keeps_a_file_when_its_check_fails(
    exported, tmp_path, monkeypatch
):
    import sklearn_sed.deploy.onnx_export as onnx_export

    pipe, _ = exported
    with pytest.raises(TypeError, match="Pipeline of a LogMelExtractor"):
        export_onnx(pipe[-1], tmp_path / "x.onnx")
    target = tmp_path / "kept.onnx"
    target.write_bytes(b"the user's file")
    monkeypatch.setattr(onnx_export, "CHECK_ATOL", -1.0)
    with pytest.raises(ValueError, match="the file was not written"):
        export_onnx(pipe, target)
    assert target.read_bytes() == b"the user's file"
    assert sorted(os.listdir(tmp_path)) == ["kept.onnx"]


def _altered(path, tmp_path, change):
    model = onnx.load(str(path))
    change(model)
    out = tmp_path / "altered.onnx"
    out.write_bytes(model.SerializeToString())  # as is: no external data written
    return out


def _meta_change(edit):
    def change(model):
        entry = next(p for p in model.metadata_props if p.key == "sklearn_sed")
        meta = json.loads(entry.value)
        edit(meta)
        entry.value = json.dumps(meta)

    return change


def _drop_metadata(model):
    del model.metadata_props[:]


def _custom_op(model):
    model.graph.node[0].domain = "com.example.evil"


def _external_weight(model):
    tensor = model.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../secret.bin"


BAD = {
    "no sklearn-sed metadata": (_drop_metadata, "not written by sklearn-sed"),
    "custom operator": (_custom_op, "outside ONNX's domains"),
    "weights outside the file": (_external_weight, "stored outside the file"),
    "newer format": (
        _meta_change(lambda m: m.update(format_version=99)),
        "newer than this library's",
    ),
    "threshold above 1": (
        _meta_change(lambda m: m["decoding"]["threshold"].__setitem__(0, 2.0)),
        "decoding threshold",
    ),
    "one class too many": (
        _meta_change(lambda m: m["classes"].append("extra")),
        "decoding threshold",
    ),
    "huge FFT": (
        _meta_change(lambda m: m["frontend"].update(n_fft=2**40)),
        "n_fft is out of",
    ),
    "front end and network disagree": (
        _meta_change(lambda m: m["frontend"].update(hop_length=7)),
        "does not match its front end",
    ),
    "string for a number": (
        _meta_change(lambda m: m["frontend"].update(sr="44100")),
        "wrong type",
    ),
    "NaN scaling": (
        _meta_change(lambda m: m["frontend"].update(data_min=float("nan"))),
        "not finite",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_an_altered_file_is_refused_by_name(exported, tmp_path, case):
    _, path = exported
    change, match = BAD[case]
    bad = _altered(path, tmp_path, change)
    with pytest.raises(ValueError, match=match) as info:
        OnnxDetector(bad)
    assert "refused" in str(info.value)


def test_files_that_are_not_models_are_refused(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(ValueError, match="refused"):
        OnnxDetector(garbage)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="refused"):
        OnnxDetector(empty)
    with pytest.raises(ValueError, match="is a folder"):
        OnnxDetector(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OnnxDetector(tmp_path / "missing.onnx")


def test_export_command_writes_a_file_the_detector_reads(tmp_path, capsys):
    """`sklearn-sed export` on a model file of `train`: one line, a file that
    OnnxDetector reads, and the model file is never its output."""
    import sklearn_sed
    from sklearn_sed.cli.main import main
    from tests.conftest import make_tiny_dataset

    d = make_tiny_dataset(n_train=16, n_test=4)
    pipe = make_pipeline(LogMelExtractor(**TINY_FEATURES), PseudoLabelSED(**FAST_SED))
    pipe.fit(d["audio"], d["y_weak"], d["y_strong"])
    model = tmp_path / "model.sed"
    sklearn_sed.save(pipe, model)
    out = tmp_path / "model.onnx"
    assert main(["export", str(model), str(out)]) == 0
    assert "onnxruntime's probabilities equal torch's" in capsys.readouterr().out
    np.testing.assert_allclose(
        OnnxDetector(out).predict_frames(d["audio_test"]),
        pipe.predict_frames(d["audio_test"]),
        atol=1e-4,
    )
    assert main(["export", str(model), str(out)]) == 0  # its own file: replaced
    before = model.read_bytes()
    assert main(["export", str(model), str(model)]) == 2
    assert "also an input" in capsys.readouterr().err
    assert model.read_bytes() == before
    other = tmp_path / "notes.onnx"
    other.write_text("my notes")
    assert main(["export", str(model), str(other)]) == 2
    assert other.read_text() == "my notes"


def test_predict_writes_the_same_events_from_the_onnx_file(exported, tmp_path, capsys):
    """`sklearn-sed predict model.onnx` (onnxruntime) and `predict model.sed`
    (torch) write the same events TSV, with and without --threshold."""
    import sklearn_sed
    from sklearn_sed.cli.main import main
    from tests.conftest import make_tiny_dataset

    pipe, onnx_path = exported
    d = make_tiny_dataset(n_train=4, n_test=6)
    audio = tmp_path / "audio"
    audio.mkdir()
    for k, y in enumerate(d["audio_test"]):
        sf.write(audio / f"c{k}.wav", y, TINY_FEATURES["sr"], subtype="FLOAT")
    model = tmp_path / "model.sed"
    sklearn_sed.save(pipe, model)
    for extra in ([], ["--threshold", "0.3", "--median-filter", "0.1"]):
        outs = []
        for m in (model, onnx_path):
            out = tmp_path / f"{m.suffix[1:]}.tsv"
            assert (
                main(["predict", str(m), str(audio), "--output", str(out), *extra]) == 0
            )
            outs.append(out.read_text())
        assert outs[0] == outs[1]
        assert len(outs[0].splitlines()) > 1
    assert (
        main(
            [
                "predict",
                str(onnx_path),
                str(audio),
                "--output",
                str(tmp_path / "x.tsv"),
                "--bfloat16",
            ]
        )
        == 2
    )
    assert "ONNX model runs as exported" in capsys.readouterr().err


def test_a_stream_through_the_onnx_file_gives_its_offline_events(
    exported, tiny_dataset, tmp_path
):
    """StreamingDetector takes an OnnxDetector as it takes a pipeline."""
    from sklearn_sed.deploy import StreamingDetector
    from sklearn_sed.inference import predict_file_events

    _, path = exported
    detector = OnnxDetector(path)
    y = np.concatenate(list(tiny_dataset["audio_test"][:5])).astype(np.float32)
    wav = tmp_path / "long.wav"
    sf.write(wav, y, TINY_FEATURES["sr"], subtype="FLOAT")
    expected = predict_file_events(detector, wav, overlap=0.5)
    assert expected
    stream = StreamingDetector(detector, hop=1.0, max_event_sec=1e4)
    events = []
    for i in range(0, len(y), 3000):
        events += stream.push(y[i : i + 3000])
    events += stream.flush()
    key = sorted((round(a, 6), round(b, 6), c) for a, b, c, _ in events)
    assert key == sorted((round(a, 6), round(b, 6), c) for a, b, c in expected)
