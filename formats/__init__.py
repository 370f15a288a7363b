"""The formats layer: files and units every other layer shares, and nothing else.

Pure data (numpy and the standard library; no torch.distributed, no DataLoader, no
model): the safe I/O rules and the one restricted unpickler (:mod:`.safe_io`),
ground truth and predictions (:mod:`.gt`), the per-frame scores file
(:mod:`.scores`), frame <-> millisecond conversion and the shared constants
(:mod:`.timebase`), and the common base of every error the project raises on
bad input (:mod:`.errors`). Modules here import nothing from ``datasets``,
``models`` or the rest of ``signspot``.
"""
