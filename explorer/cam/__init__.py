"""Grad-CAM: the maps of every suggestion from one forward pass, the other methods through pytorch-grad-cam, the
layout of a CAM layer (channels, channels-last, tokens), overlays. Torch only: the models package builds on it."""
