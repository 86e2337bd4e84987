"""Identify: the answer for one photo (top-k, roll-up, CAMs, per-rank answers), the scope check (is the photo
inside what the model knows), and what people read (escaped HTML, captions, overlays)."""
