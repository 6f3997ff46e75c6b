"""The network and recipe as command-line choices, and what `train` says at
its end: the kept epoch's per-class F1 and a figure, or how to score."""

import functools

import numpy as np
import pytest

from sklearn_sed import make_detector
from sklearn_sed.cli.main import build_parser, main
from sklearn_sed.cli.train import _report_training, _train_pipeline
from sklearn_sed.networks import CRNN, ResNetSED, network_factory
from sklearn_sed.recipes import RECIPE_CARDS, RECIPES
from tests import test_cli
from tests.test_cli import _one_line_error, _train_argv

#: The DESED-layout folder of tests/test_cli.py (a fixture, module scope).
desed_dir = test_cli.desed_dir


def _sed_of(*extra):
    argv = ["train", "--strong-tsv", "s.tsv", "--output", "m.sed", *extra]
    return _train_pipeline(build_parser().parse_args(argv))[-1]


def test_network_flag_trains_the_crnn_with_the_extractors_mel_bands():
    """`--network crnn` swaps the recipe's ResNet for the baseline CRNN and
    gives it the extractor's bands; `--network resnet` swaps it back."""
    sed = _sed_of("--network", "crnn")
    assert sed.module.func is CRNN
    assert sed.module.keywords == {"n_filters": 32, "hidden_size": 64}
    narrow = _sed_of("--network", "crnn", "--set", "n_mels=32")
    assert narrow.module.keywords["n_mels"] == 32
    assert _sed_of("--recipe", "dcase2019", "--network", "resnet").module is None
    assert _sed_of("--recipe", "dcase2019").module.func is CRNN


def test_set_module_builds_a_named_network_from_literal_fields():
    sed = _sed_of("--set", "module=crnn(n_filters=8, hidden_size=16)")
    assert sed.module.func is CRNN
    assert sed.module.keywords == {"n_filters": 8, "hidden_size": 16}
    assert _sed_of("--set", "module=CRNN").module.keywords["n_filters"] == 32
    assert _sed_of("--set", "module=resnet").module is None


@pytest.mark.parametrize(
    ("setting", "match"),
    [
        ("module=os.system('x')", "a network by name"),
        ("module=__import__('os')", "network must be one of"),
        ("module=Transformer(n=2)", "network must be one of"),
        ("module=crnn(8)", "fields by name"),
        ("module=crnn(**{'n_filters': 8})", "fields by name"),
        ("module=crnn(width=8)", "no field 'width'"),
        ("module=crnn(n_filters=-1)", r"n_filters must be an int in \[1, 1024\]"),
        ("module=crnn(n_filters=10**9)", "n_filters"),
        ("module=crnn(pooling='mean')", "pooling must be"),
        ("module=resnet(n_filters=32)", "--set n_filters=32"),
    ],
)
def test_a_bad_network_is_a_one_line_error_before_extraction(
    desed_dir, tmp_path, capsys, monkeypatch, setting, match
):
    import re

    from sklearn_sed import LogMelExtractor

    def not_reached(*args, **kwargs):
        raise AssertionError("features were extracted before the check")

    monkeypatch.setattr(LogMelExtractor, "fit_transform", not_reached)
    argv = [*_train_argv(desed_dir), "--set", setting, "--output", str(tmp_path / "m")]
    assert re.search(match, _one_line_error(argv, capsys))


def test_network_and_module_together_are_refused(desed_dir, tmp_path, capsys):
    argv = [
        *_train_argv(desed_dir),
        "--network",
        "crnn",
        "--set",
        "module=crnn(n_filters=8)",
        "--output",
        str(tmp_path / "m"),
    ]
    assert "Give one of them" in _one_line_error(argv, capsys)
    with pytest.raises(ValueError, match="Give one of them"):
        make_detector("cpu", network="crnn", module=ResNetSED)


def test_a_recipe_that_needs_unlabelled_clips_says_so_before_any_work(
    desed_dir, tmp_path, capsys, monkeypatch
):
    from sklearn_sed import LogMelExtractor

    monkeypatch.setattr(LogMelExtractor, "fit_transform", None)  # never reached
    argv = [*_train_argv(desed_dir), "--recipe", "dcase2019", "--output", "m"]
    # The recipe has no pseudo labels: a field of them is refused by name.
    err = _one_line_error(argv, capsys)
    assert "pseudo_labels is None here, so it has no field max_iter" in err
    assert "--set 'pseudo_labels=PseudoLabelSchedule(max_iter=...)'" in err
    i = argv.index("pseudo_labels__max_iter=1")
    argv = argv[: i - 1] + argv[i + 1 : -1]  # without that --set, nor --output
    err = _one_line_error([*argv, str(tmp_path / "m")], capsys)
    assert "--recipe dcase2019 needs unlabelled clips" in err
    assert "--unlabeled-tsv" in err
    # Without its mean teacher the recipe needs none.
    sed = _sed_of("--recipe", "dcase2019", "--set", "mean_teacher=None")
    assert sed.mean_teacher is None


def test_the_crnn_trained_from_the_command_line_is_saved_and_predicts(
    desed_dir, tmp_path, capsys
):
    """A CRNN row of Table 1 end to end: train with --network, save, load."""
    import sklearn_sed

    model = tmp_path / "crnn.sed"
    argv = _train_argv(desed_dir, "--set", "module=crnn(n_filters=4, hidden_size=4)")
    assert main([*argv, "--output", str(model)]) == 0
    out = capsys.readouterr().out
    assert "Nothing was scored on held-out clips" in out
    pipe = sklearn_sed.load(model)
    assert pipe[-1].module.func is CRNN
    assert pipe[-1].module.keywords == {"n_filters": 4, "hidden_size": 4, "n_mels": 32}
    assert not (tmp_path / "crnn.training.png").exists()


def test_train_with_validation_clips_prints_per_class_f1_and_writes_a_figure(
    fitted_sed, tiny_dataset, tmp_path, capsys
):
    """The table's F1 are the scorer's, and their mean is the macro F1."""
    from sklearn_sed import event_based_f1
    from sklearn_sed.metrics.scoring import class_wise_f1

    d = tiny_dataset
    validation = {"X_val": d["F_test"], "y_val": d["y_test"]}
    figure = tmp_path / "model.training.png"
    _report_training(fitted_sed, validation, str(figure))
    out = capsys.readouterr().out
    events = fitted_sed.predict_events(d["F_test"])
    f1 = class_wise_f1(d["y_test"], events, classes=fitted_sed.classes_)
    table = {}
    for line in out.splitlines()[1:-1]:
        label, value = line.rsplit(None, 2)[:2]
        table[label.strip()] = float(value)
    for label, value in zip(fitted_sed.classes_, f1, strict=True):
        assert table[label] == round(100 * value, 1)
    macro = event_based_f1(d["y_test"], events, classes=list(fitted_sed.classes_))
    assert np.isclose(np.nanmean(f1), macro)
    assert table["macro mean"] == round(100 * macro, 1)
    assert "the last epoch kept" in out  # fitted without validation clips
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_train_without_validation_clips_says_how_to_score(fitted_sed, capsys):
    _report_training(fitted_sed, {}, None)
    out = capsys.readouterr().out
    assert "Nothing was scored on held-out clips" in out
    assert "--valid-tsv" in out
    assert "sklearn-sed evaluate" in out


def test_help_lists_every_recipe_with_its_measured_f1_and_needs():
    import textwrap

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    text = " ".join(train.format_help().split())
    assert set(RECIPE_CARDS) == set(RECIPES)
    for name, card in RECIPE_CARDS.items():
        assert f" {name} " in text
        assert " ".join(textwrap.wrap(card.event_f1)) in text
    assert "needs unlabelled clips (--unlabeled-tsv)" in text


def test_recipe_doc_lists_every_recipe_with_its_card():
    import pathlib

    doc = (pathlib.Path(__file__).parents[1] / "docs" / "recipe.md").read_text()
    doc = " ".join(doc.split())
    for name, card in RECIPE_CARDS.items():
        assert f"`{name}`" in doc
        assert card.event_f1 in doc, name


def test_network_factory_names_and_refusals():
    assert network_factory("resnet") is None
    assert network_factory("ResNetSED") is None
    assert isinstance(network_factory("crnn"), functools.partial)
    with pytest.raises(ValueError, match="network must be one of"):
        network_factory("vgg")
    with pytest.raises(ValueError, match="no field 'n_classes'"):
        network_factory("crnn", n_classes=3)
    sed = make_detector("cpu", network="crnn")
    assert sed.module.func is CRNN
    assert sed.pseudo_labels is not None


def test_plot_training_draws_the_bars_and_the_curve(fitted_sed):
    from sklearn_sed.plotting import plot_training
    from sklearn_sed.training.net import history_to_rows

    rows = history_to_rows(fitted_sed.net_.history)
    fig = plot_training(rows, [0.5, np.nan], classes=["a", "b"], best_epoch=2)
    bars = fig.axes[0]
    ticks = dict(zip(bars.get_yticks(), bars.get_yticklabels(), strict=True))
    assert [ticks[y].get_text() for y in sorted(ticks, reverse=True)] == ["a", "b"]
    assert "n/a" in [t.get_text() for t in bars.texts]
    assert "macro mean 50.0 %" in bars.get_title()
    with pytest.raises(ValueError, match="one F1 per class"):
        plot_training(rows, [0.5], classes=["a", "b"])


def test_every_train_command_in_the_benchmarks_page_builds_its_detector():
    """The commands printed beside the rows of docs/benchmarks.md parse and
    build a detector (a stale flag or setting fails here)."""
    import pathlib
    import re
    import shlex

    page = pathlib.Path(__file__).parents[1] / "docs" / "benchmarks.md"
    commands = re.findall(r"`(sklearn-sed train [^`]+)`", page.read_text())
    assert len(commands) >= 9
    for command in commands:
        argv = shlex.split(command)[1:]
        sed = _train_pipeline(build_parser().parse_args(argv))[-1]
        assert sed.random_state == 0
