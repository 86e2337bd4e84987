"""Weight formats: one module per format, each reading a checkpoint into weights (and, where the format carries
them, class names and preprocessing)."""
