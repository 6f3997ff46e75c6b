"""The package's layers, checked from the source: lower never imports higher.

Every ``import`` of a ``sklearn_sed`` module, at module level or inside a
function, must go to a module of a lower (or, where the table allows, the
same) layer; the numpy layer imports neither torch nor skorch; no private
name is imported from another module. docs/design.md shows the same table.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent / "sklearn_sed"

#: Layer of every module, by its dotted name inside the package (a package
#: counts as its ``__init__``, named by the package).
LAYERS = {
    "_atomic": 0,
    "_lazy": 0,
    "_json": 0,
    "_version": 0,
    "_validation": 0,
    "labels": 0,
    "training.pseudo_labels": 0,
    "decoding.decode": 0,
    "decoding": 0,
    "training": 0,
    "_device": 1,
    "audio.features": 1,
    "audio.reading": 1,
    "audio.levels": 0,
    "metrics.scoring": 1,
    "metrics": 1,
    "decoding.tuning": 1,
    "datasets": 1,
    "datasets._desed": 1,
    "datasets._soundscapes": 1,
    "datasets._synthetic": 1,
    "networks": 2,
    "networks.contract": 2,
    "networks.crnn": 2,
    "networks.embedding_crnn": 2,
    "embeddings.checkpoints": 2,  # torch.load(weights_only=True), checked
    "embeddings.panns": 2,
    "embeddings.beats": 2,
    "embeddings.models": 3,  # the models by name: checkpoint + network
    "embeddings.transformer": 4,
    "embeddings.fusion": 5,
    "embeddings": 6,
    "networks.registry": 2,
    "networks.resnet": 2,
    "training.losses": 2,
    "training.augment": 2,
    "training.fast_path": 2,  # the training probe: torch and the standard library
    "training._probe_child": 2,
    "training.net": 3,
    "training.callbacks": 3,
    "training.checkpoints": 3,
    "training.build": 3,
    "estimator": 4,
    "recipes": 5,
    "plotting": 5,
    "inference": 5,
    "audio.store": 5,
    "audio": 5,
    "metrics.psds": 5,
    "decoding.cv": 5,
    "pipeline": 6,
    "io": 7,  # writes and reads model files of estimators and pipelines
    "deploy.frontend": 1,
    "deploy.onnx_detector": 6,
    "deploy.onnx_export": 6,
    "deploy.streaming": 6,
    "deploy.pcm": 0,
    "deploy": 6,
    "demo": 8,
    # The command line: the checks every command shares, the --set parser,
    # one module per command, then the parser that gathers them.
    "cli._common": 9,
    "cli.settings": 10,
    "cli.demo": 11,
    "cli.train": 11,
    "cli.predict": 11,
    "cli.evaluate": 11,
    "cli.plot": 11,
    "cli.export": 11,
    "cli.listen": 11,
    "cli.main": 12,
    "cli": 12,
    "cli.__main__": 13,
    "": 13,  # the package's __init__: the public API
}
#: Layers a layer may import (besides its own layer for 3 and 4); from
#: layer 5 up, every lower layer and none of its own.
MAY_IMPORT = {
    0: {0},
    1: {0, 1},
    2: {0, 2},
    3: {0, 1, 2, 3},
    4: {0, 1, 2, 3},
    **{layer: set(range(layer)) for layer in range(5, 14)},
}
#: Upward imports that are known and scheduled to go, with the reason.
KNOWN = {}
#: The numpy layer stays free of torch (features uses torch.stft for speed).
TORCH_FREE = {name for name, layer in LAYERS.items() if layer == 0}


def _module(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _target(dotted):
    """The module of LAYERS that ``sklearn_sed.<dotted>`` names (longest match)."""
    parts = dotted.split(".") if dotted else []
    while parts and ".".join(parts) not in LAYERS:
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """(imported top-level sklearn_sed module, imported names, line) of a file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "sklearn_sed" or node.module.startswith("sklearn_sed."):
                inner = node.module[len("sklearn_sed.") :] if "." in node.module else ""
                for a in node.names:  # "from sklearn_sed.audio import store"
                    sub = f"{inner}.{a.name}" if inner else a.name
                    target = sub if sub in LAYERS else _target(inner)
                    yield target, [a.name], node.lineno
            else:
                yield "external:" + node.module.split(".")[0], [], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("sklearn_sed."):
                    yield _target(a.name[len("sklearn_sed.") :]), [], node.lineno
                else:
                    yield "external:" + a.name.split(".")[0], [], node.lineno


FILES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = {_module(p) for p in FILES} - set(LAYERS)
    assert not missing, f"add these modules to LAYERS (and docs/design.md): {missing}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_go_down_the_layers(path):
    me = _module(path)
    layer = LAYERS[me]
    for target, _names, line in _imports(path):
        if target.startswith("external:"):
            if me in TORCH_FREE:
                assert target not in ("external:torch", "external:skorch"), (
                    f"{path.name}:{line}: the numpy layer must not import {target[9:]}"
                )
            continue
        if target == me or (me, target) in KNOWN:
            continue
        if path.name == "__init__.py" and target.startswith(me + "."):
            continue  # a package re-exports its own modules
        allowed = MAY_IMPORT[layer] | ({layer} if 3 <= layer <= 4 else set())
        assert LAYERS[target] in allowed, (
            f"{path.name}:{line}: layer {layer} module {me!r} imports {target!r} "
            f"of layer {LAYERS[target]}"
        )


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_imported_from_another_module(path):
    me = _module(path)
    for target, names, line in _imports(path):
        if target.startswith("external:") or target == me:
            continue
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{path.name}:{line}: imports private {private}"
