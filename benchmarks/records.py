"""One record format for every benchmark run, and one merge.

A record is a JSON file that holds what was run (the settings, as
:class:`benchmarks.settings.Settings` writes them), where and when (commit,
machine, date) and what it gave (``results``). Records of one experiment sit
in one folder, one file per run; :func:`merge` groups the runs whose
settings are equal but for the seed, and refuses nothing silently: runs of
other settings form groups of their own.
"""

import dataclasses
import hashlib
import json
import os
import statistics

from benchmarks.common import commit, machine, now

__all__ = ["Record", "merge", "read_records", "summarise"]


@dataclasses.dataclass
class Record:
    """One benchmark run: its settings, origin and results.

    Parameters
    ----------
    experiment : str
        What was measured (``"table1"``, ``"speed"``, ...).
    settings : dict
        The run's settings (``Settings.as_dict()``), seed included.
    results : dict
        Its figures (F1 scores, seconds, per-epoch histories).
    commit, machine, date : str
        Where and when it ran; filled in by :meth:`new`.
    """

    experiment: str
    settings: dict
    results: dict
    commit: str = ""
    machine: str = ""
    date: str = ""

    @classmethod
    def new(cls, experiment, settings, results, at_commit=None):
        """A record of a run made now, on this machine.

        ``at_commit`` is the commit the run started from (taken when it
        started, as commits may land while it runs); None takes the current
        one.
        """
        return cls(
            experiment,
            dict(settings),
            dict(results),
            at_commit or commit(),
            machine(),
            now(),
        )

    def write(self, folder):
        """Write the record into ``folder``; return the path.

        The name holds the experiment, the variant and seed when the
        settings have them, and a hash of all the settings, so that runs of
        other settings never replace each other's records; a rerun of the
        same settings replaces its own.
        """
        os.makedirs(folder, exist_ok=True)
        name = "-".join(
            f"{k}{self.settings[k]}" for k in ("variant", "seed") if k in self.settings
        )
        digest = hashlib.blake2b(
            json.dumps(self.settings, sort_keys=True, default=str).encode(),
            digest_size=4,
        ).hexdigest()
        path = os.path.join(folder, f"{self.experiment}-{name or 'run'}-{digest}.json")
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=1, default=float)
        return path


def read_records(paths, experiment=None):
    """Read records from files and folders (every ``*.json`` in a folder).

    Parameters
    ----------
    paths : list of str
        Record files or folders of them.
    experiment : str or None, default=None
        Keep only the records of this experiment.

    Returns
    -------
    records : list of Record
    """
    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(
                os.path.join(path, f) for f in os.listdir(path) if f.endswith(".json")
            )
        elif os.path.exists(path):
            files.append(path)
        else:
            raise SystemExit(f"error: no record at {path!r}.")
    records = []
    fields = {f.name for f in dataclasses.fields(Record)}
    for path in files:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict) or set(data) != fields:
            raise SystemExit(
                f"error: {path!r} is not a record (fields {sorted(fields)})."
            )
        record = Record(**data)
        if experiment is None or record.experiment == experiment:
            records.append(record)
    return records


def merge(records, over=("seed",)):
    """Group runs whose settings are equal but for ``over`` (the seeds).

    Parameters
    ----------
    records : list of Record
    over : tuple of str, default=("seed",)
        Settings that may differ within a group.

    Returns
    -------
    groups : list of (dict, list of Record)
        The shared settings and the runs of each group, in first-seen order;
        a seed run twice keeps its latest record (by date).
    """
    groups = {}
    for record in sorted(records, key=lambda r: r.date):
        shared = {k: v for k, v in record.settings.items() if k not in over}
        key = json.dumps(shared, sort_keys=True)
        runs = groups.setdefault(key, (shared, {}))[1]
        runs[tuple(record.settings.get(k) for k in over)] = record
    return [(shared, list(runs.values())) for shared, runs in groups.values()]


def summarise(values):
    """``mean ± spread`` of a list of numbers (population standard deviation).

    One number has no spread: it is given alone, with ``(1 run)``.
    """
    values = [float(v) for v in values]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.1f} (1 run)"
    return f"{statistics.mean(values):.1f} ± {statistics.pstdev(values):.1f}"
