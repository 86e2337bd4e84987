"""Models: cards (what a checkpoint is), the architecture registry, weight formats, the Classifier (preprocessing
from the card, logits, CAMs and features in one pass), per-rank heads, batched passes over photos."""
