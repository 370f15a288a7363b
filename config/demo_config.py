"""Tiny CPU recipe for the synthetic demo: the original recipe scaled down to minutes.

Same loss, sampling, mixup, schedule and validation as the original; only the sizes
change so that a 2-core CPU trains it in a few minutes.
"""

from signspot.config import Config


def get_config() -> Config:
    cfg = Config()
    cfg.data.frame_store = "demo_out/frame_store"  # written by scripts/demo.py
    cfg.data.folds_dir = "demo_out/folds/original_split"
    cfg.data.fold = 0
    cfg.data.num_classes = 10  # the synthetic data set has 10 sign classes
    cfg.data.resize = 64  # small frames: CPU speed
    cfg.data.crop = 56
    cfg.data.num_workers = 0  # the demo trains its folds in parallel, one CPU thread each; loading costs ~4 ms a clip
    cfg.model.name = "hs_i3d_tiny"  # same topology, a fraction of the channels
    cfg.model.dropout = 0.2  # a small model on little data underfits rather than overfits
    cfg.optim.lr = 1e-3  # no pretrained backbone: a higher rate converges within the few epochs
    cfg.train.epochs = 24  # ~550 steps: about 8 minutes per fold on one CPU core
    cfg.train.batch_size = 8
    cfg.train.log_every = 5
    cfg.eval.every_epochs = 5
    cfg.eval.num_workers = 0
    cfg.io.run_dir = "demo_out/runs/demo/maxfix_neg0_fold0"
    return cfg
