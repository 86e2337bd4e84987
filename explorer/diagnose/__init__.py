"""Where the model goes wrong: the evaluation table (``schema``, built by ``table`` from a model pass in
``evaluate``), and what the dashboard computes from it alone (``metrics``, ``calibration``, ``geo_effect``),
draws (``figures``) and says (``texts``)."""
