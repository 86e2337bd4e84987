"""Species-identification explorer: see what an iNat-style classifier sees and where it goes wrong."""

__version__ = "0.1.0"
