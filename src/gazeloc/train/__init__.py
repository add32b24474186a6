"""Training: experiment settings, data, augmentation and the resumable training loop."""
