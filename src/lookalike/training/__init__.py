"""Training the embedding head (and optionally the backbone's last blocks) on labelled catalog features."""

TRAINING_VIEWS = 24_000  # photo-like views added to the training images as positives (BENCHMARKS.md, #17)
