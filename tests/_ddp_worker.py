"""torchrun worker of test_trainer: a tiny CoritTrainer run under DDP (gloo, CPU) that saves this rank's weights."""

import sys
from pathlib import Path

import torch
from test_trainer import common_args, image_dataset, tiny_corit

from corit_hf.trainer import CoritTrainer, CoritTrainingArguments


def main(output_dir: Path) -> None:
    model = tiny_corit()
    overrides = dict(max_steps=2, gradient_accumulation_steps=2, ddp_backend="gloo")
    args = CoritTrainingArguments(**common_args(output_dir, **overrides), sam_rho=0.1, gsnr_every=1)
    trainer = CoritTrainer(model, args, train_dataset=image_dataset())
    trainer.train()
    torch.save(model.state_dict(), output_dir / f"rank{trainer.args.process_index}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
