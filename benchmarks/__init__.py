"""Experiments beside the library: data, Table 1, speed and memory.

A small package that ``sklearn_sed`` never imports (``tests/test_layers.py``
checks it). Run its scripts as modules from the repository root, e.g.
``python -m benchmarks.table1 --help``:

- :mod:`benchmarks.make_data` writes the benchmark soundscapes;
- :mod:`benchmarks.table1` trains and scores Table 1 (CPU or accelerator);
- :mod:`benchmarks.speed`, :mod:`benchmarks.throughput`,
  :mod:`benchmarks.gpu_speed` and :mod:`benchmarks.memory` measure time and
  memory.

One settings schema (:class:`benchmarks.settings.Settings`), one record
format that holds its settings, commit and machine
(:class:`benchmarks.records.Record`) and one merge
(:func:`benchmarks.records.merge`). Result files stay out of git
(``benchmarks/results/``); ``docs/benchmarks.md`` keeps the tables.
"""
