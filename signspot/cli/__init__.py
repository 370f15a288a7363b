"""The command line: argument parsing, printing and exit codes, one module per command.

Each module has ``parse_args(argv)``, ``main(**options)`` (the work, callable from
tests; it raises the library's typed errors) and ``run(argv=None)``, which the
thin scripts at the top of the repository and in ``scripts/`` call. ``run`` turns
any :class:`signspot.formats.errors.SignspotError` (and a missing or unreadable
file) into one line, ``error: ...`` on stderr, and exit status 1.

| command (from a clone) | console script (installed) | module |
|---|---|---|
| ``main.py`` | ``signspot-train`` | :mod:`.train` |
| ``main_results_creator_v2.py`` | ``signspot-infer`` | :mod:`.infer` |
| ``solution_test_creator_v2.py`` | ``signspot-ensemble`` | :mod:`.ensemble` |
| ``scripts/track1_lmdb_creator.py`` | ``signspot-create-store`` | :mod:`.create_store` |
| ``scripts/make_folds.py`` | ``signspot-make-folds`` | :mod:`.make_folds` |
| ``scripts/make_synthetic_dataset.py`` | ``signspot-make-synthetic`` | :mod:`.make_synthetic` |
| ``scripts/train_grid.py`` | ``signspot-train-grid`` | :mod:`.train_grid` |
| ``scripts/evaluate.py`` | ``signspot-evaluate`` | :mod:`.evaluate` |
| ``scripts/visualize.py`` | ``signspot-visualize`` | :mod:`.visualize` |
| ``scripts/convert_annotations.py`` | ``signspot-convert-annotations`` | :mod:`.convert_annotations` |
| ``scripts/spot.py`` | ``signspot-spot`` | :mod:`.spot` |
| ``scripts/find_sign.py`` | ``signspot-find-sign`` | :mod:`.find_sign` |
| ``scripts/demo.py`` | (a clone only: it drives the scripts and ``config/``) | :mod:`.demo` |
"""
