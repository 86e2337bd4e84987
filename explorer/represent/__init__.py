"""What the model has learned beyond its output layer: heads trained on frozen features (``heads``)."""
