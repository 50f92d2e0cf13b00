"""The CoRIT model: its configuration, the detector itself (both remote code) and the fine-tuning modes."""
