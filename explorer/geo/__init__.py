"""The geo-prior: where (and when) is each taxon present? Encoding and model (``model``), training
(``training``), occurrence records (``records``), combination with a classifier (``combine``) and range maps
(``maps``)."""
