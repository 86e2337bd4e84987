"""What decided an answer, like SpeciesNet's ``prediction_source``: for each suggestion and for the headline, which
parts of the system made it what it is. Words, not codes: they are shown in the page, the JSON and the CSV.

A suggestion: ``image`` (the classifier alone), ``image + place`` (re-ranked by the geo-prior at the place, which
knows the taxon), ``image + place (out of known range)`` (the prior does not know it there, the image does), or
``out of scope`` (the photo is not what the model knows: a closest class, not an answer).
The headline: its parts joined by " · ": ``routed to <model>`` (the "best model" choice), ``image`` / ``N photos``
(an observation) with ``+ place`` when the place re-ranked, then ``roll-up to <rank>`` (no species was sure
enough; a clade's summed probability was), ``no claim`` (nothing reached the threshold), ``probably not a known
species`` (the scope check's novelty test), or ``out of scope`` alone after the routing.
"""

from __future__ import annotations

import math

IMAGE, PLACE, OUT_OF_SCOPE = "image", "image + place", "out of scope"


def suggestion_provenance(result, prediction) -> str:
    """What decided one suggestion's probability (``result``: an identify.answer.IdentifyResult, which imports
    this module; ``prediction``: one of its predictions)."""
    if result.scope is not None and not result.scope.in_scope:
        return OUT_OF_SCOPE
    placed = result.prior is not None and result.prior.used
    if not placed or prediction.geo_score is None or math.isnan(prediction.geo_score):
        return IMAGE
    if getattr(prediction, "kept_unusual", False):
        return f"{PLACE} (unusual here: out of known range, kept)"
    return f"{PLACE} (out of known range)" if prediction.out_of_range else PLACE


def headline_provenance(result, photos: int = 1) -> str:
    """What decided the headline, its parts joined by " · " (``photos``: an observation's photos fused)."""
    parts = [f"routed to {result.model}"] if result.routed_from else []
    if result.scope is not None and not result.scope.in_scope:
        return " · ".join([*parts, OUT_OF_SCOPE])
    base = IMAGE if photos == 1 else f"{photos} photos"
    parts.append(base + (" + place" if result.prior is not None and result.prior.used else ""))
    rank = result.rollup.rank
    if rank is None:
        parts.append("no claim")
    elif rank != "species":
        parts.append(f"roll-up to {rank}")
    if result.scope is not None and result.scope.known_species is False:
        parts.append("probably not a known species")
    return " · ".join(parts)
