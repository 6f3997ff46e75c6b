"""Peak memory of training from an on-disk feature store, by clip count.

Writes a float16 store of random 1024 x 64 maps (the paper's size), trains one
epoch of a width-1 ResNet (one block per stage) from it, and reports the peak
resident anonymous memory (``RssAnon``; the memory-mapped store's file pages
are page cache and not counted). What grows with the clip count is the data
path (store, batches, labels), not the network, so the narrowest network will
do.

    python -m benchmarks.memory --n-clips 200 2000 20000 --folder /tmp/sed_stores
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

from benchmarks.common import ROOT


def anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def one(n, folder):
    from sklearn_sed import PseudoLabelSED
    from sklearn_sed._atomic import atomic_path

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"store_{n}.npy")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        with atomic_path(path, suffix=".npy") as tmp:
            store = np.lib.format.open_memmap(
                tmp, mode="w+", dtype="float16", shape=(n, 1024, 64)
            )
            for s in range(0, n, 200):
                store[s : s + 200] = rng.random(
                    (min(200, n - s), 1024, 64), dtype=np.float32
                )
            store.flush()
            del store
    X = np.load(path, mmap_mode="r")
    y_weak = [["a"] if i % 2 else ["b"] for i in range(n)]
    peak, done = [anon()], []

    def watch():
        while not done:
            peak.append(anon())
            time.sleep(0.01)

    thread = threading.Thread(target=watch)
    thread.start()
    t = time.perf_counter()
    PseudoLabelSED(
        n_filters=1,
        n_blocks=1,
        max_epochs=1,
        pseudo_labels=None,
        batch_size=32,
        random_state=0,
    ).fit(X, y_weak)
    done.append(True)
    thread.join()
    return max(peak), time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-clips", type=int, nargs="+", default=[200, 2000, 20000])
    p.add_argument("--folder", default="/tmp/sed_stores")
    p.add_argument("--json", action="store_true", help="print only the peak (bytes)")
    args = p.parse_args(argv)
    if args.json and len(args.n_clips) == 1:
        peak, _ = one(args.n_clips[0], args.folder)
        print(peak)
        return 0
    for n in args.n_clips:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.memory",
                "--n-clips",
                str(n),
                "--folder",
                args.folder,
                "--json",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        peak = int(out.stdout.strip().splitlines()[-1])
        print(
            json.dumps(
                {
                    "n_clips": n,
                    "store_GiB": n * 1024 * 64 * 2 / 2**30,
                    "peak_anon_MiB": peak / 2**20,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
