"""Write the reference predictions and model files of ``test_compatibility.py``.

Run from the repository root at commit 49cbdfe (the code before the
parameter objects, with the flat parameters of that time)::

    python tests/data/make_reference.py

It fits every recipe at a tiny size on the tests' tiny data and keeps the
frame and clip probabilities of the test clips, and writes two model files
in the format of that commit. The files are kept in git: the tests compare
today's fits and loads with them.
"""

import json
import pathlib
import subprocess

import numpy as np

from sklearn_sed import save
from sklearn_sed.recipes import make_detector
from tests.conftest import make_tiny_dataset

HERE = pathlib.Path(__file__).parent
TINY = dict(n_filters=4, max_epochs=2, max_iter=2, duration=2.0, random_state=0)


def main():
    data = make_tiny_dataset()
    X, X_test = data["F"], data["F_test"]
    y_weak, y_strong = data["y_weak"], data["y_strong"]
    out = {}
    for recipe in ("paper", "cpu", "cpu_teacher"):
        sed = make_detector(recipe, **TINY).fit(X, y_weak, y_strong)
        frames, clips = sed._forward_all(X_test)
        out[f"{recipe}_frames"], out[f"{recipe}_clips"] = frames, clips
        out[f"{recipe}_threshold"] = sed.decoding_settings()[0]
        if recipe == "cpu":
            save(sed, HERE / "model_v1_cpu.sed")
    # Training levers that the parameter objects dropped, set in a file.
    sed = make_detector("paper", **TINY, mixup=0.25, ema_decay=0.99).fit(
        X, y_weak, y_strong
    )
    out["levers_frames"] = sed._forward_all(X_test)[0]
    save(sed, HERE / "model_v1_levers.sed")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    np.savez_compressed(HERE / "reference_predictions.npz", **out)
    (HERE / "reference.json").write_text(json.dumps({"commit": commit, "tiny": TINY}))


if __name__ == "__main__":
    main()
