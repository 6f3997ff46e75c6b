"""DCASE2019 Task 4 / DESED TSV files: readers, writers and ``load_desed``.

Formats (tab-separated, one header row):

* strong: ``filename onset offset event_label``, several rows per file; a row
  with empty onset, offset and label marks a file with no event;
* weak: ``filename event_labels`` with comma-separated labels;
* unlabelled: ``filename``;
* predictions: the strong format.

Every problem is reported with the file and the line number.
"""

import csv
import math
import os

from sklearn_sed._atomic import atomic_path
from sklearn_sed.datasets._synthetic import DESED_CLASSES
from sklearn_sed.labels import UNLABELED, weak_labels_of

__all__ = [
    "MissingAudioError",
    "load_desed",
    "read_strong_tsv",
    "read_unlabeled_tsv",
    "read_weak_tsv",
    "write_events_tsv",
]


#: Latest event time a label file may hold, in seconds (a day): beyond it
#: the segment-based metrics would allocate a segment grid of that length.
MAX_EVENT_SEC = 86_400.0


def _rows(path, expected):
    """Yield ``(line number, cells)`` of a TSV whose header is ``expected``.

    Strict, so that no row is read as something else: a UTF-8 byte-order
    mark is accepted, quotes are plain characters (no CSV quoting merges
    rows), the header must be exactly ``expected``, and every row holds at
    most as many cells as the header (a tab inside a field is refused).
    Errors name the file and the line.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TSV file {path!r} does not exist.")
    lineno = 1
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header is None:
                raise ValueError(
                    f"{path}: the file is empty; expected a header row "
                    f"{chr(9).join(expected)!r}."
                )
            header = [h.strip() for h in header]
            if header != list(expected):
                raise ValueError(
                    f"{path}:1: the header must be {list(expected)} "
                    f"(tab-separated). Got {header} instead."
                )
            for lineno, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) > len(expected):
                    raise ValueError(
                        f"{path}:{lineno}: {len(row)} tab-separated cells, but "
                        f"the header has {len(expected)} ({list(expected)}). "
                        + (
                            "Separate the labels of a clip with commas."
                            if expected == ("filename", "event_labels")
                            else "Remove the extra cells."
                        )
                    )
                yield lineno, row
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: near line {lineno + 1}: the file is not UTF-8 text ({exc.reason} "
            f"at byte {exc.start}). Save it as UTF-8."
        ) from exc
    except csv.Error as exc:
        raise ValueError(
            f"{path}:{lineno + 1}: not a readable TSV row ({exc})."
        ) from exc


def _check_label(label, classes, where):
    if classes is not None and label not in classes:
        raise ValueError(
            f"{where}: event_label {label!r} is not one of the known classes "
            f"{sorted(classes)}. Consider passing classes=... or fixing the label."
        )


def read_strong_tsv(path, *, classes=DESED_CLASSES):
    """Read a strong (or prediction) TSV file.

    Parameters
    ----------
    path : str or os.PathLike
        TSV with header ``filename onset offset event_label``.
    classes : collection of str or None, default=DESED_CLASSES
        Known labels; None accepts any label.

    Returns
    -------
    events : dict of str to list of (onset, offset, event_label)
        Per filename, in file order; files listed without events map to ``[]``.
    """
    out = {}
    for lineno, row in _rows(path, ("filename", "onset", "offset", "event_label")):
        where = f"{os.fspath(path)}:{lineno}"
        row = row + [""] * (4 - len(row))
        if len(row) > 4:
            raise ValueError(
                f"{where}: expected 4 tab-separated columns, got {len(row)}."
            )
        name, onset, offset, label = (c.strip() for c in row)
        if not name:
            raise ValueError(f"{where}: the filename is empty.")
        events = out.setdefault(name, [])
        if not onset and not offset and not label:
            continue  # a file with no event
        try:
            onset_f, offset_f = float(onset), float(offset)
        except ValueError:
            raise ValueError(
                f"{where}: onset and offset must be numbers in seconds. Got "
                f"{onset!r} and {offset!r} instead."
            ) from None
        if not (math.isfinite(onset_f) and math.isfinite(offset_f)):
            raise ValueError(f"{where}: onset and offset must be finite.")
        if onset_f < 0 or offset_f > MAX_EVENT_SEC:
            raise ValueError(
                f"{where}: onset and offset must lie in [0, {MAX_EVENT_SEC:g}] s "
                f"(a day). Got onset={onset_f} and offset={offset_f} instead."
            )
        if onset_f >= offset_f:
            raise ValueError(
                f"{where}: onset must be < offset. Got onset={onset_f} and "
                f"offset={offset_f} instead."
            )
        _check_label(label, classes, where)
        events.append((onset_f, offset_f, label))
    return out


def read_weak_tsv(path, *, classes=DESED_CLASSES):
    """Read a weak TSV file (``filename event_labels``, labels comma-separated).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    classes : collection of str or None, default=DESED_CLASSES
        Known labels; None accepts any label.

    Returns
    -------
    labels : dict of str to list of str
        Per filename, its sorted labels.
    """
    out, first = {}, {}
    for lineno, row in _rows(path, ("filename", "event_labels")):
        where = f"{os.fspath(path)}:{lineno}"
        if len(row) < 1 or not row[0].strip():
            raise ValueError(f"{where}: the filename is empty.")
        name = row[0].strip()
        if name in first:
            raise ValueError(
                f"{where}: {name!r} is listed again (first at line {first[name]}); "
                "a weak TSV lists each clip once, with its labels separated by "
                "commas."
            )
        first[name] = lineno
        labels = [s.strip() for s in (row[1] if len(row) > 1 else "").split(",")]
        labels = sorted({s for s in labels if s})
        for label in labels:
            _check_label(label, classes, where)
        out[name] = labels
    return out


def read_unlabeled_tsv(path):
    """Read an unlabelled TSV file (``filename``).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    filenames : list of str
        In file order.
    """
    names, first = [], {}
    for lineno, row in _rows(path, ("filename",)):
        name = row[0].strip()
        if name in first:
            raise ValueError(
                f"{os.fspath(path)}:{lineno}: {name!r} is listed again (first at "
                f"line {first[name]})."
            )
        first[name] = lineno
        names.append(name)
    return names


def write_events_tsv(path, events):
    """Write events in the strong/prediction TSV format.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; written to a temporary file first, then renamed.
    events : dict of str to list of (onset, offset, event_label)
        Per filename; a file with no event gets one row with empty fields so
        that it is not lost.
    """
    for name in events:
        if any(c in str(name) for c in "\t\r\n"):
            raise ValueError(
                f"Filename {name!r} holds a tab or a line break, which a TSV "
                "row cannot; rename the file."
            )
    # Rows joined by hand, without quoting: the reader takes quotes as plain
    # characters too, so a name starting with '"' round-trips.
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        f.write("filename\tonset\toffset\tevent_label\n")
        for name, evs in events.items():
            if not evs:
                f.write(f"{name}\t\t\t\n")
            for onset, offset, label in evs:
                f.write(f"{name}\t{onset:.3f}\t{offset:.3f}\t{label}\n")


class MissingAudioError(FileNotFoundError):
    """Audio files listed in a TSV are not in its audio folder.

    Raised by :func:`load_desed`; the attributes let a caller word the fix in
    its own terms (the command line names its ``--*-audio-dir`` flag).

    Attributes
    ----------
    tsv : str
        The TSV that lists the files.
    kind : {"strong", "weak", "unlabeled"}
        Which of ``load_desed``'s TSVs it is.
    folder : str
        The folder searched.
    missing : list of str
        The file names not found there.
    n_listed : int
        How many files the TSV lists.
    """

    def __init__(self, message, *, tsv, kind, folder, missing, n_listed):
        super().__init__(message)
        self.tsv = tsv
        self.kind = kind
        self.folder = folder
        self.missing = missing
        self.n_listed = n_listed


def load_desed(
    audio_dir=None,
    strong_tsv=None,
    weak_tsv=None,
    unlabeled_tsv=None,
    *,
    strong_audio_dir=None,
    weak_audio_dir=None,
    unlabeled_audio_dir=None,
    classes=DESED_CLASSES,
    check_audio=True,
):
    """Load a DESED-layout dataset as ``X, y_weak, y_strong`` ready for ``fit``.

    Parameters
    ----------
    audio_dir : str or os.PathLike, default=None
        Folder holding the audio files named in the TSVs (the default of the
        three per-TSV folders below).
    strong_tsv, weak_tsv, unlabeled_tsv : str or os.PathLike, default=None
        Label files; at least one is needed.
    strong_audio_dir, weak_audio_dir, unlabeled_audio_dir : str or os.PathLike, \
default=None
        The audio folder of each TSV, as DESED lays them out (e.g.
        ``audio/train/synthetic20/soundscapes`` for
        ``metadata/train/synthetic20/soundscapes.tsv`` and
        ``audio/train/weak`` for ``metadata/train/weak.tsv``); None uses
        ``audio_dir``.
    classes : collection of str or None, default=DESED_CLASSES
        Known labels.
    check_audio : bool, default=True
        Refuse TSV rows whose audio file is missing.

    Returns
    -------
    X : list of str
        Audio file paths, strong clips first, then weak, then unlabelled.
    y_weak : list of (list of str or int)
        Weak labels (derived from the events for strong clips;
        :data:`~sklearn_sed.labels.UNLABELED`, ``-1``, for unlabelled
        clips, as ``fit`` takes them).
    y_strong : list of (list of (onset, offset, event_label) or None)
        Events of strong clips, None otherwise.
    """
    if strong_tsv is None and weak_tsv is None and unlabeled_tsv is None:
        raise ValueError(
            "load_desed needs at least one of strong_tsv, weak_tsv, unlabeled_tsv."
        )
    folders = {
        "strong": strong_audio_dir if strong_audio_dir is not None else audio_dir,
        "weak": weak_audio_dir if weak_audio_dir is not None else audio_dir,
        "unlabeled": (
            unlabeled_audio_dir if unlabeled_audio_dir is not None else audio_dir
        ),
    }
    tsvs = {"strong": strong_tsv, "weak": weak_tsv, "unlabeled": unlabeled_tsv}
    for kind, tsv in tsvs.items():
        if tsv is not None and folders[kind] is None:
            raise ValueError(
                f"{kind}_tsv={os.fspath(tsv)!r} has no audio folder. Pass "
                f"{kind}_audio_dir (its folder) or audio_dir (one folder for all)."
            )
    y_weak, y_strong = [], []
    sources = []  # (name, kind of TSV, folder) per clip
    if strong_tsv is not None:
        for name, evs in read_strong_tsv(strong_tsv, classes=classes).items():
            sources.append((name, "strong", folders["strong"]))
            y_weak.append(weak_labels_of(evs))
            y_strong.append(evs)
    if weak_tsv is not None:
        for name, labels in read_weak_tsv(weak_tsv, classes=classes).items():
            sources.append((name, "weak", folders["weak"]))
            y_weak.append(labels)
            y_strong.append(None)
    if unlabeled_tsv is not None:
        for name in read_unlabeled_tsv(unlabeled_tsv):
            sources.append((name, "unlabeled", folders["unlabeled"]))
            y_weak.append(UNLABELED)
            y_strong.append(None)
    paths = [os.path.join(os.fspath(folder), name) for name, _, folder in sources]
    seen = {}
    for (name, kind, _), p in zip(sources, paths, strict=True):
        # realpath: a folder or file that is a symlink to a listed one is
        # the same clip (--unlabeled-audio-dir linked to the labelled folder).
        key = os.path.realpath(p)
        if key in seen:
            raise ValueError(
                f"{name!r} is listed in {os.fspath(tsvs[seen[key]])} ({seen[key]}) "
                f"and in {os.fspath(tsvs[kind])} ({kind}): one clip would be "
                "trained twice with two labels. List each clip in one TSV."
            )
        seen[key] = kind
    if check_audio:
        missing = [
            (n, kind, folder)
            for (n, kind, folder), p in zip(sources, paths, strict=True)
            if not os.path.isfile(p)
        ]
        if missing:
            name, kind, folder = missing[0]
            tsv = os.fspath(tsvs[kind])
            names = [m[0] for m in missing if m[1] == kind]
            raise MissingAudioError(
                f"{tsv}: {len(names)} listed audio file(s) are missing "
                f"from {os.fspath(folder)!r}, e.g. {name!r}. Point this TSV at "
                "its own audio folder (strong_audio_dir, weak_audio_dir, "
                "unlabeled_audio_dir), or pass check_audio=False to load the "
                "labels alone.",
                tsv=tsv,
                kind=kind,
                folder=os.fspath(folder),
                missing=names,
                n_listed=sum(src[1] == kind for src in sources),
            )
    return paths, y_weak, y_strong
