"""torchrun worker of test_trainer: a tiny CoritTrainer run under DDP (gloo, CPU) that saves this rank's weights.

Arguments: the output folder and sam_ascent_every (1 = SAM, k > 1 = LookSAM).
"""

import sys
from pathlib import Path

import torch
from test_trainer import common_args, image_dataset, tiny_corit

from corit_hf.training.trainer import CoritTrainer, CoritTrainingArguments


def main(output_dir: Path, ascent_every: int) -> None:
    model = tiny_corit()
    steps = 2 if ascent_every == 1 else ascent_every + 1  # LookSAM: one-pass steps, then a second full SAM step
    overrides = dict(max_steps=steps, gradient_accumulation_steps=2, ddp_backend="gloo")
    args = CoritTrainingArguments(
        **common_args(output_dir, **overrides), sam_rho=0.1, sam_ascent_every=ascent_every, gsnr_every=1
    )
    trainer = CoritTrainer(model, args, train_dataset=image_dataset())
    trainer.train()
    torch.save(model.state_dict(), output_dir / f"rank{trainer.args.process_index}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
