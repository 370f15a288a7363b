"""Data: the synthetic MSSL dataset generator (``synthetic``), the LMDB frame store,
folds, training/inference window datasets, clip transforms and samplers."""
