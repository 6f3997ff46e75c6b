"""Peak memory of training from an on-disk feature store, by clip count.

Writes a float16 store of random 1024 x 64 maps (the paper's size), trains one
epoch from it, and reports the peak resident anonymous memory (``RssAnon``;
the memory-mapped store's file pages are page cache and not counted). What
grows with the clip count is the data path (store, batches, labels), not the
network, so by default the network is a minimal module (average pooling and
one linear layer) that lets an epoch over 20,000 clips finish in minutes on
2 cores; ``--resnet`` uses a width-1 ResNet instead.

    python benchmarks/memory.py --n-clips 200 2000 20000 --folder /tmp/sed_stores
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np


def anon():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class TinySED:
    """Frame/clip outputs from 8x8 average pooling and a linear layer."""

    def __new__(cls, n_classes):
        import torch
        from torch import nn

        class _Tiny(nn.Module):
            def __init__(self):
                super().__init__()
                self.pool = nn.AvgPool2d(8)
                self.fc = nn.Linear(8, n_classes)

            def forward(self, X):
                x = self.pool(X.unsqueeze(1)).squeeze(1)  # (batch, T/8, 8)
                frames = torch.sigmoid(self.fc(x))
                return frames, frames.amax(dim=1)

        return _Tiny()


def one(n, folder, resnet=False):
    from sklearn_sed import PseudoLabelSED

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"store_{n}.npy")
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        store = np.lib.format.open_memmap(
            path + ".tmp.npy", mode="w+", dtype="float16", shape=(n, 1024, 64)
        )
        for s in range(0, n, 200):
            store[s : s + 200] = rng.random(
                (min(200, n - s), 1024, 64), dtype=np.float32
            )
        store.flush()
        del store
        os.replace(path + ".tmp.npy", path)
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
        pseudo_label=False,
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
    p.add_argument("--resnet", action="store_true", help="train a width-1 ResNet")
    args = p.parse_args(argv)
    if args.json and len(args.n_clips) == 1:
        peak, _ = one(args.n_clips[0], args.folder, args.resnet)
        print(peak)
        return 0
    for n in args.n_clips:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--n-clips",
                str(n),
                "--folder",
                args.folder,
                "--json",
            ],
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
