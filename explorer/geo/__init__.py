"""Geo-priors: where (and when) is each taxon present? Our own SINR-style prior (encoding and model: ``model``;
training: ``training``; occurrence records: ``records``), BirdNET's range model (``birdnet``), their combination
with a classifier and choice by name (``combine``), their comparison on held-out records (``compare``) and range
maps by week (``maps``)."""
