"""The benchmarks package: its records, settings, pseudo-label quality, and
one tiny Table 1 run from a pack (as on an accelerator) on the CPU."""

import ast
import json
import lzma
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.quality import PseudoLabelQuality
from benchmarks.records import Record, merge, read_records, summarise
from benchmarks.settings import Settings
from sklearn_sed.datasets import DESED_CLASSES
from sklearn_sed.labels import events_to_frames

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_library_never_imports_the_benchmarks():
    for path in pathlib.Path(ROOT, "sklearn_sed").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n.split(".")[0] == "benchmarks" for n in names), path


def test_settings_round_trip_through_a_record_and_refuse_unknown_fields():
    s = Settings(variant="resnet", seed=3, n_filters=8)
    assert Settings.from_dict(s.as_dict()) == s
    with pytest.raises(ValueError, match=r"unknown settings \['mixup'\]"):
        Settings.from_dict({**s.as_dict(), "mixup": 0.5})
    with pytest.raises(ValueError, match="variant must be one of"):
        Settings(variant="transformer")


def test_settings_build_the_detector_of_each_variant():
    pl = Settings(variant="resnet_pl", epochs=14, max_iter=4).estimator()
    assert (pl.max_epochs, pl.pseudo_labels.max_iter) == (10, 4)
    plain = Settings(variant="resnet", epochs=14).estimator()
    assert (plain.max_epochs, plain.pseudo_labels) == (14, None)
    crnn = Settings(variant="crnn", crnn_filters=16).estimator()
    assert crnn.module.keywords["n_filters"] == 16
    taught = Settings(variant="resnet_pl", teacher="crnn", seed=2).estimator()
    assert taught.pseudo_labels.teacher.random_state == 2


def _record(variant, seed, f1, date, **settings):
    s = Settings(variant=variant, seed=seed, **settings).as_dict()
    return Record("table1", s, {"event_f1": f1}, "abc", "here", date)


def test_merge_groups_seeds_of_equal_settings_and_keeps_the_latest_rerun(tmp_path):
    records = [
        _record("resnet", 0, 0.1, "1"),
        _record("resnet", 1, 0.2, "2"),
        _record("resnet", 0, 0.3, "3"),  # seed 0 again, later
        _record("resnet", 0, 0.5, "4", n_filters=8),  # other settings
    ]
    for r in records:
        r.write(tmp_path / "a")
    # Seed 0 twice with equal settings is one file; other settings another.
    assert len(read_records([str(tmp_path / "a")], experiment="table1")) == 3
    groups = merge(records)
    assert [len(runs) for _, runs in groups] == [2, 1]
    first = groups[0][1]
    assert sorted(r.results["event_f1"] for r in first) == [0.2, 0.3]
    assert summarise([1.0, 3.0]) == "2.0 ± 1.0"
    assert summarise([2.0]) == "2.0 (1 run)"  # no spread to show


def test_a_file_that_is_not_a_record_is_refused_by_name(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"variant": "crnn"}))
    with pytest.raises(SystemExit, match="is not a record"):
        read_records([str(path)])


def test_pseudo_label_quality_counts_frames_against_the_truth():
    """Precision, recall and clip agreement on a hand-made case; clips with an
    unknown truth (None) are left out."""
    classes = ["a", "b"]
    events = [[(0.0, 5.0, "a")], [(2.5, 10.0, "b")], None]
    truth = [
        events_to_frames(e, classes=classes, n_frames=4, duration=10.0)
        for e in events[:2]
    ]
    assert truth[0][:, 0].tolist() == [1, 1, 0, 0]
    pseudo = np.zeros((3, 4, 2), np.float32)
    pseudo[0, 1:3, 0] = 1  # 1 of 2 frames right, 1 wrong
    pseudo[1, 1:4, 1] = 1  # all 3 true frames of clip 1
    pseudo[2] = 1  # ignored: no truth
    quality = PseudoLabelQuality(events, classes=classes, duration=10.0).initialize()
    quality.on_pseudo_labels(
        None, iteration=0, threshold=0.5, clip_index=[0, 1, 2], frame_labels=pseudo
    )
    (rec,) = quality.records_
    assert rec["n_pseudo"] == 3
    assert rec["precision"] == pytest.approx(4 / 5)
    assert rec["recall"] == pytest.approx(4 / 5)
    assert rec["clip_precision"] == pytest.approx(1.0)


def test_pseudo_label_quality_is_undefined_when_nothing_is_selected():
    """No selected clip has no precision, recall or clip agreement: NaN, not 0
    (a 0 would pull a mean over seeds down)."""
    quality = PseudoLabelQuality([[(0.0, 5.0, "a")]], classes=["a"]).initialize()
    quality.on_pseudo_labels(
        None,
        iteration=0,
        threshold=0.5,
        clip_index=[],
        frame_labels=np.zeros((0, 4, 1), np.float32),
    )
    (rec,) = quality.records_
    assert rec["n_pseudo"] == 0
    assert np.isnan([rec["precision"], rec["recall"], rec["clip_precision"]]).all()


def test_rule_table_averages_ratios_over_the_seeds_that_selected_clips():
    """A seed that selected no clip counts in the share selected, not in the
    ratios, and the row says so; a stored 0 precision of such a seed (records
    written before it was NaN) is left out too."""
    from benchmarks.table1 import _unlabeled_rule

    def rule(selected, precision):
        return {
            "confidence": 0.9,
            "threshold": 0.75,
            "selected": selected,
            "n_pseudo": int(100 * selected),
            "precision": precision,
            "recall": 0.0 if selected == 0 else 0.5,
            "clip_precision": float("nan") if selected == 0 else 0.9,
        }

    settings = {"variant": "resnet_pl", "unlabeled": True}
    records = [
        Record(
            "table1",
            Settings(**settings, seed=seed).as_dict(),
            {"unlabeled_rule": [rule(selected, precision)]},
        )
        for seed, (selected, precision) in enumerate([(0.4, 0.98), (0.2, 0.96), (0, 0)])
    ]
    (row,) = [line for line in _unlabeled_rule(merge(records)) if "| 0.9 |" in line]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:] == ["20.0", "90.0", "97.0", "50.0", "3 (1 selected none)"]
    # Where no seed selected a clip, the ratios are blank, not 0 or nan.
    (row,) = [line for line in _unlabeled_rule(merge(records[2:])) if "| 0.9 |" in line]
    assert row.endswith("| 0.0 | - | - | - | 1 (1 selected none) |")


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """A pack as ``gpu_table1.py pack`` writes it, of 48 + 8 random maps."""
    folder = tmp_path_factory.mktemp("pack")
    rng = np.random.default_rng(0)
    n_train, n_valid = 48, 8

    def events(k):
        c = DESED_CLASSES[k % len(DESED_CLASSES)]
        return [[1.0 + k % 3, 4.0 + k % 4, c]]

    y_strong = [events(k) if k % 2 == 0 else None for k in range(n_train)]
    y_weak = [[DESED_CLASSES[k % len(DESED_CLASSES)]] for k in range(n_train)]
    meta = {
        "y_weak": y_weak,
        "y_strong": y_strong,
        "y_valid": [events(k) for k in range(n_valid)],
        "max_quantisation_error": 0.002,
    }
    with open(folder / "meta.json", "w") as f:
        json.dump(meta, f)
    q = {
        "train": rng.integers(0, 256, (n_train, 1024, 64), dtype=np.uint8),
        "valid": rng.integers(0, 256, (n_valid, 1024, 64), dtype=np.uint8),
        "unlabeled": rng.integers(0, 256, (8, 1024, 64), dtype=np.uint8),
    }
    with lzma.open(folder / "features.npz.xz", "wb", preset=0) as f:
        np.savez(f, **q)
    return folder


@pytest.mark.slow
def test_table1_runs_tiny_from_a_pack_and_reports(pack, tmp_path, capsys):
    """``table1 run --pack --tiny`` trains and scores every variant and writes
    one record each; ``report`` merges them into the page's section (in this
    process: it only reads records)."""
    from benchmarks import table1

    out = tmp_path / "records"
    _run(
        "-m", "benchmarks.table1", "run", "--pack", str(pack), "--out", str(out),
        "--tiny", "--seeds", "0",
    )  # fmt: skip
    records = read_records([str(out)], experiment="table1")
    assert sorted(r.settings["variant"] for r in records) == [
        "crnn",
        "resnet",
        "resnet_pl",
    ]
    for r in records:
        assert 0.0 <= r.results["event_f1"] <= 1.0
        assert all((r.commit, r.machine, r.date))
        assert r.results["history"]
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- table1 start -->\n<!-- table1 end -->\nafter\n")
    table1.main(["report", str(out), "--docs", str(page)])
    text = page.read_text()
    assert "ResNet with pseudo label (proposed)" in text
    assert text.endswith("after\n")
    # Each row names the command line that trains it.
    command = "- ResNet with pseudo label (proposed): `sklearn-sed train --recipe cpu"
    assert command in text
    # Each row names its seeds' kept epochs, and has a row of F1 per class.
    best = {r.settings["variant"]: r.results["best_epoch"] for r in records}
    row = next(line for line in text.splitlines() if line.startswith("| ResNet with"))
    assert row.split(" | ")[5] == f"0: {best['resnet_pl']}"
    per_class = text.split("Event-based F1 per class")[1].split("\n\n")[1]
    assert per_class.startswith("| system | Alarm_bell_ringing | Blender |")
    rows = per_class.splitlines()[2:]
    assert len(rows) == 3
    assert all(len(r.split(" | ")) == 11 for r in rows)
    # The rows of unlabelled clips: the CRNN mean teacher, the ResNet + PL.
    for variant, flag in (("crnn", "--mean-teacher"), ("resnet_pl", "--unlabeled")):
        _run(
            "-m", "benchmarks.table1", "run", "--pack", str(pack), "--out",
            str(out), "--tiny", "--seeds", "0", "--variants", variant, flag,
            *(["--unlabeled"] if flag == "--mean-teacher" else []),
        )  # fmt: skip
    records = read_records([str(out)], experiment="table1")
    unl = [r for r in records if r.settings["unlabeled"]]
    assert sorted(r.settings["variant"] for r in unl) == ["crnn", "resnet_pl"]
    assert all(r.results["n_unlabeled_clips"] == 8 for r in unl)
    crnn_mt = next(r for r in unl if r.settings["mean_teacher"])
    assert any("consistency" in row for row in crnn_mt.results["history"])
    # Every run measures the confidence rule on the unlabelled clips' truth.
    rule = crnn_mt.results["unlabeled_rule"]
    assert {(r["confidence"], r["threshold"]) for r in rule} == {
        (c, t) for c in (0.6, 0.75, 0.9) for t in (0.75, 0.45)
    }
    assert all(0.0 <= r["selected"] <= 1.0 for r in rule)
    capsys.readouterr()
    table1.main(["report", str(out)])
    text = capsys.readouterr().out
    assert "DCASE2019 baseline: CRNN mean teacher (EMA 0.999), unlabelled clips" in text
    assert "Mean teacher, per epoch: consistency cost" in text
    assert (
        "| DCASE2019 baseline: CRNN mean teacher (EMA 0.999), unlabelled clips | 0.75 |"
        in text
    )


@pytest.mark.slow
def test_accelerator_speed_script_runs_its_check_on_the_cpu(tmp_path):
    out = tmp_path / "speed.json"
    _run("-m", "benchmarks.gpu_speed", "--check", "--out", str(out))
    (record,) = read_records([str(out)])
    assert record.experiment == "gpu_speed"
    record = record.results
    for key in ("bf16_matmul_tflops", "forward", "train_clips_per_s", "inference"):
        assert "error" not in str(record[key]), record[key]


def _comparable(value):
    """A parameter in a form that compares by content."""
    import functools

    if isinstance(value, functools.partial):
        return ("partial", value.func, dict(value.keywords))
    if hasattr(value, "get_params"):
        return (type(value), {k: _comparable(v) for k, v in value.get_params().items()})
    return value


@pytest.mark.parametrize(
    "fields",
    [
        {"variant": "resnet_pl"},
        {"variant": "resnet"},
        {"variant": "crnn"},
        {"variant": "crnn", "crnn_filters": 16},
        {"variant": "crnn", "mean_teacher": True, "unlabeled": True, "ema_decay": 0.99},
        {"variant": "crnn", "mean_teacher": True, "unlabeled": True},
        {
            "variant": "resnet",
            "mean_teacher": True,
            "unlabeled": True,
            "ema_decay": 0.99,
        },
        {"variant": "resnet_pl", "unlabeled": True},
        {"variant": "resnet_pl", "unlabeled": True, "mean_teacher": True},
        {"variant": "resnet_pl", "train_dtype": "bfloat16", "seed": 2, "epochs": 8},
        {"variant": "resnet_pl", "teacher": "crnn", "weighting": "keep_strong"},
    ],
)
def test_each_table_row_is_one_train_command_with_the_same_settings(fields):
    """The command printed beside a row of docs/benchmarks.md builds, through
    the command line's own parser, the detector the benchmark trains."""
    import shlex

    from sklearn_sed.cli.main import build_parser
    from sklearn_sed.cli.train import _train_pipeline

    settings = Settings(**fields)
    argv = shlex.split(settings.train_command("/data"))
    assert argv[0] == "sklearn-sed"
    cli = _train_pipeline(build_parser().parse_args(argv[1:]))[-1]
    bench = settings.estimator()
    skip = {"verbose", "callbacks", "classes", "pseudo_labels"}
    expected = {k: _comparable(v) for k, v in bench.get_params(deep=False).items()}
    got = {k: _comparable(v) for k, v in cli.get_params(deep=False).items()}
    for key in sorted(set(expected) - skip):
        assert got[key] == expected[key], key
    # The schedule without its teacher (an estimator built on each side).
    schedules = [s.pseudo_labels for s in (bench, cli)]
    assert [s is None for s in schedules] == [False, False] or schedules == [None, None]
    if schedules[0] is not None:
        own = [dict(s.get_params(deep=False), teacher=None) for s in schedules]
        assert _comparable(own[0]) == _comparable(own[1])
        teachers = [s.teacher for s in schedules]
        assert [t is None for t in teachers] == [t is None for t in teachers[::-1]]
    assert ("--unlabeled-tsv" in argv) == settings.unlabeled


@pytest.mark.slow
def test_eager_wins_times_both_layouts_in_children_and_writes_its_section(tmp_path):
    """``benchmarks.eager_wins --tiny``: eager float32 in both memory
    layouts, a step time per cell and the collate function's, in the section
    of the Markdown file it is given. A layout whose kernels kill the child
    (channels-last at 2 filters does on some CPUs) is named, not fatal."""
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n")
    _run("-m", "benchmarks.eager_wins", "--tiny", "--repeats", "1", "--docs", str(docs))
    text = docs.read_text()
    assert "<!-- eager_wins start -->" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| float32 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[2]) > 0, row  # contiguous: the layout that trains
    if cells[3].startswith("killed by SIG"):
        assert cells[4] == "n/a", row
    else:
        assert float(cells[3]) > 0, row
        assert cells[4].endswith("x"), row
    assert "ms a batch" in text


def test_mean_teacher_epoch_prints_the_seconds_of_each_epoch(capsys):
    from benchmarks import mean_teacher_epoch

    # float32: bfloat16 has no native kernels on a CPU without AVX-512 BF16 or
    # AMX, where this test took 93 s instead of a few.
    argv = ["--clips", "4", "--epochs", "2", "--train-dtype", "float32"]
    assert mean_teacher_epoch.main(argv) == 0
    seconds = [float(s) for s in capsys.readouterr().out.split()]
    assert len(seconds) == 2
    assert all(s > 0 for s in seconds)


#: /proc/cpuinfo flags of the CPU kinds the benchmarks tell apart.
AVX2_FLAGS = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
AVX512_BF16_FLAGS = AVX2_FLAGS | {"avx512f", "avx512bw", "avx512_bf16"}


def _cpu_has(flag):
    try:
        return flag in pathlib.Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


@pytest.mark.skipif(not _cpu_has("avx512f"), reason="needs a CPU with AVX-512")
def test_throughput_avx2_limits_run_torch_and_the_probe_on_avx2_code():
    # What `benchmarks.throughput --isa avx2` relies on: a child given the
    # limits dispatches ATen and Inductor to AVX2, the probe offers no
    # bfloat16 there, and its cache key sees every limit.
    from benchmarks.throughput import ISA_LIMITS

    code = (
        "import json, torch\n"
        "from torch._inductor.cpu_vec_isa import pick_vec_isa\n"
        "from sklearn_sed.training import fast_path\n"
        "print(json.dumps([torch.backends.cpu.get_cpu_capability(),"
        " str(pick_vec_isa()), fast_path.has_native_bfloat16('cpu'),"
        " sorted(fast_path._isa_limits())]))\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, **ISA_LIMITS["avx2"]}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    aten, inductor, native_bf16, limits = json.loads(proc.stdout.splitlines()[-1])
    assert aten == "AVX2"
    assert inductor == "avx2"
    assert native_bf16 is False
    assert limits == sorted(ISA_LIMITS["avx2"])


@pytest.mark.slow
@pytest.mark.skipif(not _cpu_has("avx512f"), reason="needs a CPU with AVX-512")
def test_avx2_limits_hold_torch_numpy_and_openblas_in_a_child():
    """What ``benchmarks.speed --isa avx2`` gives its child: ATen, numpy's
    SIMD targets and OpenBLAS's kernels all on AVX2 code, as the section
    it writes says."""
    from benchmarks.common import ISA_LIMITS, numpy_isa_limits

    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        **ISA_LIMITS["avx2"],
        **numpy_isa_limits("avx2"),
    }
    code = (
        "import numpy as np\n"
        "np.ones((64, 64)) @ np.ones((64, 64))\n"
        "from benchmarks.common import isa_in_effect\n"
        "print(isa_in_effect())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    effect = proc.stdout.splitlines()[-1]
    assert effect.startswith("ATen AVX2; numpy's SIMD targets "), effect
    assert "AVX512" not in effect, effect
    assert "X86_V4" not in effect, effect
    assert effect.endswith("BLAS openblas Haswell"), effect


def _one_clip_folder(tmp_path):
    import soundfile as sf

    audio = tmp_path / "data" / "audio" / "strong"
    audio.mkdir(parents=True)
    noise = 0.1 * np.random.default_rng(0).standard_normal(441000)
    sf.write(audio / "0.wav", noise, 44100)
    return tmp_path / "data"


def test_speed_features_only_writes_its_own_section(tmp_path, monkeypatch):
    """``--only features`` times the extraction against the loops and
    replaces its own section of the page, nothing else."""
    from benchmarks import common, speed

    monkeypatch.setattr(common, "cpu_flags", lambda: AVX512_BF16_FLAGS)
    monkeypatch.setattr(speed.time, "sleep", lambda s: None)
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- speed_features start -->\nold\n<!-- speed_features end -->\n"
        "<!-- speed start -->\nkept\n<!-- speed end -->\n"
    )
    data = _one_clip_folder(tmp_path)
    argv = ["--data", str(data), "--only", "features", "--repeats", "1"]
    assert speed.main([*argv, "--docs", str(page)]) == 0
    text = page.read_text()
    assert "### Log-mel extraction against a librosa loop\n" in text
    assert "--only features --repeats 1`" in text
    assert "| `LogMelExtractor` |" in text
    assert "old" not in text
    assert "kept" in text


def test_speed_features_on_an_avx2_only_cpu_go_to_their_own_section(
    tmp_path, monkeypatch
):
    """Figures of a CPU without AVX-512 never replace those of one with it."""
    from benchmarks import common, speed

    monkeypatch.setattr(common, "cpu_flags", lambda: AVX2_FLAGS)
    monkeypatch.setattr(speed.time, "sleep", lambda s: None)
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- speed_features start -->\nkept\n<!-- speed_features end -->\n"
    )
    data = _one_clip_folder(tmp_path)
    argv = ["--data", str(data), "--only", "features", "--repeats", "1"]
    assert speed.main([*argv, "--docs", str(page)]) == 0
    text = page.read_text()
    assert "kept" in text
    start = text.index("<!-- speed_features_avx2_cpu start -->")
    section = text[start : text.index("<!-- speed_features_avx2_cpu end -->")]
    title = "### Log-mel extraction against a librosa loop on a CPU with AVX2 only"
    assert f"{title}\n" in section
    assert "Instruction set held" not in section


@pytest.mark.parametrize("module", ["speed", "throughput"])
def test_an_avx2_only_cpu_refuses_to_be_held_to_avx2(module, monkeypatch, capsys):
    """``--isa avx2`` on a CPU without AVX-512 would measure its own code
    under another section's name: refused, saying what to run."""
    import importlib

    from benchmarks import common

    monkeypatch.setattr(common, "cpu_flags", lambda: AVX2_FLAGS)
    bench = importlib.import_module(f"benchmarks.{module}")
    argv = ["--isa", "avx2"] + (["--only", "features"] if module == "speed" else [])
    with pytest.raises(SystemExit, match="this CPU has AVX2 only") as raised:
        bench.main([*argv, "--data", "/nonexistent"] if module == "speed" else argv)
    assert "Run without --isa" in str(raised.value)


@pytest.mark.parametrize(
    ("flags", "isa", "expected"),
    [
        (
            "AVX512_BF16_FLAGS",
            "native",
            ("throughput", "### Training throughput"),
        ),
        (
            "AVX512_BF16_FLAGS",
            "avx2",
            ("throughput_avx2", "### Training throughput on AVX2 code paths"),
        ),
        (
            "AVX2_FLAGS",
            "native",
            ("throughput_avx2_cpu", "### Training throughput on a CPU with AVX2 only"),
        ),
    ],
)
def test_each_cpu_kind_has_its_own_section(flags, isa, expected):
    from benchmarks.common import isa_section

    flags = globals()[flags]
    assert isa_section("throughput", "### Training throughput", isa, flags) == expected


def test_speed_on_avx2_code_runs_itself_again_with_the_limits(tmp_path, monkeypatch):
    """numpy reads its limit at import: ``--isa avx2`` measures in a child
    given every limit, and returns the child's exit status."""
    from benchmarks import common, speed
    from benchmarks.common import ISA_LIMITS, numpy_isa_limits

    monkeypatch.setattr(common, "cpu_flags", lambda: AVX512_BF16_FLAGS)
    calls = []

    def run(cmd, env, **kwargs):
        calls.append((cmd, env))
        return subprocess.CompletedProcess(cmd, 3)

    monkeypatch.setattr(speed.subprocess, "run", run)
    argv = ["--data", str(_one_clip_folder(tmp_path)), "--only", "features"]
    assert speed.main([*argv, "--isa", "avx2"]) == 3
    ((cmd, env),) = calls
    assert cmd[1:3] == ["-m", "benchmarks.speed"]
    assert cmd[3:] == [*argv, "--isa", "avx2"]
    limits = {**ISA_LIMITS["avx2"], **numpy_isa_limits("avx2")}
    assert {k: env[k] for k in limits} == limits


def test_speed_refuses_an_instruction_set_limit_for_every_figure(capsys):
    from benchmarks import speed

    with pytest.raises(SystemExit):
        speed.main(["--isa", "avx2"])
    assert "--isa needs --only features" in capsys.readouterr().err
