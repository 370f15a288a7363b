"""The original HS-I3D recipe (the defaults of signspot/config.py), one fold of one split.

The defaults already are the original recipe: 60 classes, 32-frame clips, resize 256 and
random crop 224, batch 8, AdamW lr 3e-4 without weight decay, cosine schedule to 0.1x
stepped every iteration, 200 epochs, mixup (alpha 1.0), maxfix targets, class-balanced
sampling, head loss weights 1/5 each, validation every 5 epochs keeping the 3 best.
What changes from run to run is below; the released ensemble varies the split, the fold
and neg_prob (see scripts/train_grid.py), e.g.

    python main.py --config config/example_config.py \\
        --set data.folds_dir=data/folds/original_split --set data.fold=4 --set data.neg_prob=0.1 \\
        --set io.run_dir=runs/5fold_neg01/maxfix_neg01_fold4
"""

from signspot.config import Config


def get_config() -> Config:
    cfg = Config()
    cfg.data.frame_store = "data/frame_store"  # made by scripts/track1_lmdb_creator.py from the MSSL videos
    cfg.data.folds_dir = "data/folds/original_split"  # 5 folds of the training videos (new_split: 7 folds)
    cfg.data.fold = 0  # which fold is held out for validation
    cfg.data.neg_prob = 0.0  # the released ensemble uses 0, 0.1 and 0.5
    cfg.model.bsl1k_weights = "data/model_bsl1k_wlasl.pth.tar"  # the original initialises the backbone from BSL-1K
    cfg.io.run_dir = "runs/5fold_neg0/maxfix_neg0_fold0"
    return cfg
