"""Training: CoritTrainer (SAM inside training_step), GSNR estimators, LookSAM, augmentation and one training run."""
