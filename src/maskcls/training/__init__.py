"""Training and inference on one device: runtime (device, precision), the fold's data, the epoch loop,
resumable checkpoints, and the inference loop that validation and prediction share."""
