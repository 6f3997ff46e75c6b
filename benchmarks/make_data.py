"""Build the Table 1 development data from real recordings (DESED-like).

From ``shared/data/domestic-sounds`` (its manifest.csv), with train and
validation disjoint by the manifest's ``group`` column:

* strong: isolated foreground events (``fg`` and ``fg-substitute`` rows, cut
  to their active region) mixed over backgrounds with sklearn_sed's
  ``make_soundscapes``; events per clip and per-class event lengths follow the
  DCASE2019 validation set (``desed-metadata/validation/validation.tsv``);
* weak: whole real recordings (one or two per clip) over a real background,
  labelled at clip level only; by default from the same training recordings
  as the strong clips, with ``--weak-sources disjoint`` from half of the
  training groups of each class, the strong clips from the other half (as in
  DCASE2019, whose weak clips were AudioSet recordings that its synthetic
  strong clips never used);
* validation: strongly labelled soundscapes from the held-out groups;
* with ``--n-extra-strong N``: N more strong clips (after the others, so that
  the strong, weak and validation clips above stay the same clip for clip),
  their events drawn class by class (every class equally often) from the
  training recordings and, for the thin classes (under ``--thin`` training
  recordings), from ``--augment`` copies of each recording, pitch-shifted
  (+-3 semitones) and time-stretched (0.8-1.25x) with librosa.

Writes a DESED layout: ``OUT/audio/{strong,weak,validation}/*.wav`` and
``OUT/metadata/{strong,weak,validation}.tsv``.

    python -m benchmarks.make_data --data ../shared/data --output /tmp/sed_bench
"""

import argparse
import csv
import os
import statistics
import sys
import time
from collections import defaultdict

import numpy as np

from benchmarks.common import DEFAULT_SHARED, require
from sklearn_sed.datasets import make_soundscapes, read_strong_tsv, write_events_tsv


def desed_statistics(meta_dir):
    """Events per clip and median event length per class of the real DCASE2019
    validation set (the distribution the soundscapes should resemble)."""
    table = read_strong_tsv(os.path.join(meta_dir, "validation", "validation.tsv"))
    counts = [len(v) for v in table.values()]
    lengths = defaultdict(list)
    for events in table.values():
        for onset, offset, label in events:
            lengths[label].append(offset - onset)
    return (
        statistics.mean(counts),
        {c: statistics.median(v) for c, v in lengths.items()},
    )


def split_groups(rows, valid_fraction, rng):
    """Hold out whole groups per class so that every class is in validation."""
    by_class = defaultdict(set)
    for r in rows:
        by_class[r["desed_class"] or r["role"]].add(r["group"])
    valid = set()
    for groups in by_class.values():
        groups = sorted(groups)
        rng.shuffle(groups)
        n = max(1, round(valid_fraction * len(groups))) if len(groups) > 1 else 0
        valid.update(groups[:n])
    return valid


def split_weak_groups(rows, valid_groups, rng):
    """The training groups (not in ``valid_groups``) whose foreground
    recordings make the weak clips: half of each class's groups (rounded
    down, so that a class with one training group stays strong only)."""
    by_class = defaultdict(set)
    for r in rows:
        if r["desed_class"] and r["group"] not in valid_groups:
            by_class[r["desed_class"]].add(r["group"])
    weak = set()
    for _, groups in sorted(by_class.items()):
        groups = sorted(groups)
        rng.shuffle(groups)
        weak.update(groups[: len(groups) // 2])
    return weak


def augmented_sources(sources, folder, *, copies, thin, rng):
    """``sources`` and, for classes with fewer than ``thin`` recordings,
    ``copies`` pitch-shifted and time-stretched copies of each (written as
    WAV files into ``folder``, cut to the active region)."""
    import librosa
    import soundfile as sf

    by_class = defaultdict(list)
    for src in sources:
        by_class[src[1]].append(src)
    out = list(sources)
    os.makedirs(folder, exist_ok=True)
    for label, rows in sorted(by_class.items()):
        if len(rows) >= thin:
            continue
        for k, (path, _, onset, offset) in enumerate(rows):
            y, sr = librosa.load(path, sr=None, mono=True)
            a = int(float(onset or 0) * sr)
            b = int(float(offset) * sr) if offset not in (None, "") else len(y)
            y = y[a:b]
            for c in range(copies):
                rate = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
                steps = float(rng.uniform(-3, 3))
                z = librosa.effects.time_stretch(y, rate=rate)
                z = librosa.effects.pitch_shift(z, sr=sr, n_steps=steps)
                name = f"{label}_{k:02d}_{c}.wav"
                sf.write(os.path.join(folder, name), z, sr, subtype="FLOAT")
                out.append((os.path.join(folder, name), label, None, None))
        print(
            f"{label}: {len(rows)} recordings + {len(rows) * copies} augmented copies"
        )
    return out


def balanced_sources(sources):
    """Repeat each class's rows so that every class is drawn equally often
    (``make_soundscapes`` draws rows uniformly)."""
    by_class = defaultdict(list)
    for src in sources:
        by_class[src[1]].append(src)
    most = max(len(v) for v in by_class.values())
    out = []
    for rows in by_class.values():
        out += rows * (most // len(rows)) + rows[: most % len(rows)]
    return out


def append_clips(src_dir, dst_dir, tsv, *, first):
    """Move ``src_dir``'s soundscapes into ``dst_dir`` numbered from ``first``
    and add their events to ``tsv`` (rewritten whole, atomically)."""
    table = read_strong_tsv(os.path.join(src_dir, "soundscapes.tsv"))
    merged = read_strong_tsv(tsv)
    names = sorted(n for n in os.listdir(src_dir) if n.endswith(".wav"))
    for i, name in enumerate(names):
        new = f"soundscape_{first + i:04d}.wav"
        os.replace(os.path.join(src_dir, name), os.path.join(dst_dir, new))
        merged[new] = table.get(name, [])
    write_events_tsv(tsv, merged)  # atomic; the row format of the others
    os.remove(os.path.join(src_dir, "soundscapes.tsv"))
    os.rmdir(src_dir)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=DEFAULT_SHARED, help="shared/data folder")
    p.add_argument("--output", default="/tmp/sed_bench")
    p.add_argument("--n-strong", type=int, default=500)
    p.add_argument("--n-weak", type=int, default=500)
    p.add_argument("--n-valid", type=int, default=150)
    p.add_argument(
        "--n-unlabeled",
        type=int,
        default=1000,
        help="in-domain clips without labels, mixed as the weak ones (their "
        "events kept aside in unlabeled_truth.tsv, never trained on)",
    )
    p.add_argument("--valid-fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--n-extra-strong",
        type=int,
        default=0,
        help="more strong clips, classes drawn equally often (thin ones augmented)",
    )
    p.add_argument(
        "--weak-sources",
        choices=("shared", "disjoint"),
        default="shared",
        help="weak clips from the strong clips' recordings (shared) or from "
        "other training groups (disjoint: half of each class's groups)",
    )
    p.add_argument(
        "--augment", type=int, default=4, help="augmented copies per thin recording"
    )
    p.add_argument(
        "--thin", type=int, default=20, help="a class with fewer training recordings"
    )
    args = p.parse_args(argv)
    sounds = require(os.path.join(args.data, "domestic-sounds"), "domestic-sounds")
    meta = require(os.path.join(args.data, "desed-metadata"), "desed-metadata")
    rng = np.random.RandomState(args.seed)
    mean_events, median_len = desed_statistics(meta)
    print(
        f"DESED synthetic: {mean_events:.2f} events per clip; median length "
        + ", ".join(f"{c} {v:.2f}s" for c, v in sorted(median_len.items()))
    )
    with open(os.path.join(sounds, "manifest.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if float(r["duration_s"]) > 0.05]
    valid_groups = split_groups(rows, args.valid_fraction, rng)
    weak_groups = split_weak_groups(
        rows, valid_groups, np.random.RandomState(args.seed + 3)
    )

    def pick(role_set, valid, active=True, groups=None):
        """Rows of ``role_set`` in validation (``valid``) or training groups;
        ``groups``: keep foreground rows only if their group is in it
        (``"strong"`` or ``"weak"`` with ``--weak-sources disjoint``)."""
        out = []
        for r in rows:
            if r["role"] not in role_set or (r["group"] in valid_groups) != valid:
                continue
            if groups is not None and r["desed_class"]:
                if (r["group"] in weak_groups) != (groups == "weak"):
                    continue
            path = os.path.join(sounds, r["path"])
            if r["desed_class"]:
                onset = r["active_onset_s"] if active else None
                offset = r["active_offset_s"] if active else None
                out.append((path, r["desed_class"], onset, offset))
            else:
                out.append(path)
        return out

    # DESED has about 3 events per 10 s clip; long stationary classes are
    # repeated up to their DESED median length (the recordings are <= 5 s).
    events = (1, max(1, round(2 * mean_events - 1)))
    settings = dict(
        duration=10.0,
        sr=44100,
        events_per_clip=events,
        snr_db=(6, 30),
        short_events="repeat",
        min_event_sec=median_len,
    )
    t0 = time.perf_counter()
    disjoint = args.weak_sources == "disjoint"
    fg = {"fg", "fg-substitute"}
    # With --weak-sources disjoint, the strong clips' and the weak clips'
    # recordings come from separate training groups.
    strong_fg = pick(fg, False, groups="strong" if disjoint else None)
    weak_fg = pick(fg, False, active=False, groups="weak" if disjoint else None)

    def mix(split, foreground, n, valid, random_state):
        """Mix ``n`` strongly labelled soundscapes into audio/SPLIT and
        their events into metadata/SPLIT.tsv."""
        _, y = make_soundscapes(
            foreground,
            pick({"background"}, valid),
            n_clips=n,
            distractors=pick({"distractor"}, valid),
            distractors_per_clip=(0, 1),
            random_state=random_state,
            **settings,
            output_dir=os.path.join(args.output, "audio", split),
        )
        os.makedirs(os.path.join(args.output, "metadata"), exist_ok=True)
        os.replace(
            os.path.join(args.output, "audio", split, "soundscapes.tsv"),
            os.path.join(args.output, "metadata", f"{split}.tsv"),
        )
        print(
            f"{split}: {n} clips from {len(foreground)} recordings, "
            f"{sum(map(len, y))} events ({time.perf_counter() - t0:.0f} s)"
        )

    for split, n, valid in (
        ("strong", args.n_strong, False),
        ("validation", args.n_valid, True),
    ):
        mix(split, pick(fg, valid), n, valid, rng)
    if disjoint:
        # The strong clips above were mixed from every training recording so
        # that the random stream, hence the validation clips, stay the same
        # clip for clip; they are mixed again from the strong groups only.
        mix(
            "strong",
            strong_fg,
            args.n_strong,
            False,
            np.random.RandomState(args.seed + 4),
        )
        print(f"weak clips from {len(weak_fg)} other recordings")

    def mix_whole(split, n, random_state):
        """Clips of whole training recordings (no active-region cut), 1-2 per
        clip over a background, as DCASE's weak and unlabelled clips.

        Their true events (the extent of each mixed recording) are kept
        aside in ``<split>_truth.tsv``, never trained on: they measure the
        pseudo labels. Returns the events per clip.
        """
        _X, y = make_soundscapes(
            weak_fg,
            pick({"background"}, False),
            n_clips=n,
            duration=10.0,
            sr=44100,
            events_per_clip=(1, 2),
            snr_db=(6, 30),
            random_state=random_state,
            output_dir=os.path.join(args.output, "audio", split),
        )
        os.replace(
            os.path.join(args.output, "audio", split, "soundscapes.tsv"),
            os.path.join(args.output, f"{split}_truth.tsv"),
        )
        return y

    # Weak: clip labels only.
    y = mix_whole("weak", args.n_weak, rng)
    with open(os.path.join(args.output, "metadata", "weak.tsv"), "w") as f:
        f.write("filename\tevent_labels\n")
        for i, events_i in enumerate(y):
            labels = ",".join(sorted({e[2] for e in events_i}))
            f.write(f"soundscape_{i:04d}.wav\t{labels}\n")
    print(f"weak: {args.n_weak} clips ({time.perf_counter() - t0:.0f} s)")
    if args.n_unlabeled:
        # Unlabelled in-domain clips: mixed as the weak ones, with a random
        # state of their own, so that the clips above stay the same file for
        # file.
        mix_whole("unlabeled", args.n_unlabeled, np.random.RandomState(args.seed + 5))
        with open(os.path.join(args.output, "metadata", "unlabeled.tsv"), "w") as f:
            f.write("filename\n")
            for i in range(args.n_unlabeled):
                f.write(f"soundscape_{i:04d}.wav\n")
        print(f"unlabeled: {args.n_unlabeled} clips ({time.perf_counter() - t0:.0f} s)")
    if args.n_extra_strong:
        fg = balanced_sources(
            augmented_sources(
                strong_fg,
                os.path.join(args.output, "augmented_sources"),
                copies=args.augment,
                thin=args.thin,
                rng=np.random.RandomState(args.seed + 1),
            )
        )
        extra = os.path.join(args.output, "audio", "strong_extra")
        make_soundscapes(
            fg,
            pick({"background"}, False),
            n_clips=args.n_extra_strong,
            distractors=pick({"distractor"}, False),
            distractors_per_clip=(0, 1),
            random_state=np.random.RandomState(args.seed + 2),
            **settings,
            output_dir=extra,
        )
        append_clips(
            extra,
            os.path.join(args.output, "audio", "strong"),
            os.path.join(args.output, "metadata", "strong.tsv"),
            first=args.n_strong,
        )
        print(
            f"extra strong: {args.n_extra_strong} clips, classes drawn equally "
            f"often ({time.perf_counter() - t0:.0f} s)"
        )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
