"""The command line: argument parsing, printing and exit codes, one module per command.

Each module has ``parse_args(argv)``, ``main(**options)`` (the work, callable from
tests; it raises the library's typed errors) and ``run(argv=None)``, which the
thin scripts at the top of the repository and in ``scripts/`` call. ``run`` turns
any :class:`signspot.formats.errors.SignspotError` (and a missing or unreadable
file) into one line, ``error: ...`` on stderr, and exit status 1.

| command | module |
|---|---|
| ``main.py`` | :mod:`.train` |
| ``main_results_creator_v2.py`` | :mod:`.infer` |
| ``solution_test_creator_v2.py`` | :mod:`.ensemble` |
| ``scripts/track1_lmdb_creator.py`` | :mod:`.create_store` |
| ``scripts/make_folds.py`` | :mod:`.make_folds` |
| ``scripts/make_synthetic_dataset.py`` | :mod:`.make_synthetic` |
| ``scripts/train_grid.py`` | :mod:`.train_grid` |
| ``scripts/evaluate.py`` | :mod:`.evaluate` |
| ``scripts/visualize.py`` | :mod:`.visualize` |
| ``scripts/demo.py`` | :mod:`.demo` |
"""
