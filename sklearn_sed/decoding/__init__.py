"""From frame probabilities to events: decoding, its tuning, its cross-validation."""
