"""Train HS-I3D on one fold from a Python config file.

    python main.py --config config/example_config.py [--set section.field=value ...] [--no-resume]
    torchrun --nproc_per_node 4 main.py --config config/example_config.py --set data.fold=2

Outputs go to io.run_dir: config.json, history.jsonl, ckpts/latest_checkpoint.pt and
ckpts/best_checkpoint_{epoch}_{f1:.4f}.pt. By default a run continues from its latest
checkpoint (train.resume).
"""

import argparse

from ._exit import run_main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="Python config file with get_config() (default: built-in defaults)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help="override a config field, value parsed with ast.literal_eval (repeatable), e.g. --set train.epochs=10",
    )
    parser.add_argument(
        "--resume", action=argparse.BooleanOptionalAction, default=None,
        help="continue from <run_dir>/ckpts/latest_checkpoint.pt if it exists (default: train.resume, on)",
    )
    parser.add_argument(
        "--move-aside", dest="move_aside", action="store_true",
        help="with --no-resume in a folder that holds a run: rename the old run to <run_dir>.old-N first "
             "(without it such a call is refused; nothing is ever deleted)",
    )
    return parser.parse_args(argv)


def main(config=None, overrides=(), resume=None, move_aside=False) -> dict:
    from ..train import run_training

    return run_training(config, overrides, resume, move_aside=move_aside)


def run(argv=None):
    return run_main(main, parse_args(argv),
                    on_interrupt="run the same command again: training resumes from the last finished epoch")
