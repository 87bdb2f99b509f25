"""What PTB-XL is made of, as every layer names it: the five diagnostic superclasses, the twelve
leads and the reduced-lead subsets, the folds and what they are for, the patient metadata fields.

    parse_leads("4")         -> (0, 1, 2, 7)        lead indices in PTB-XL order
    lead_label((0, 1, 2, 7)) -> "4"
    parse_lead_list("all")   -> ["2", "3", "4", "6"] the student subsets a search covers
"""

from __future__ import annotations

from raysearch.errors import UserError

# The five diagnostic superclasses of the PTB-XL benchmark (Strodthoff et al. 2020).
CLASSES = ("NORM", "MI", "STTC", "CD", "HYP")


LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


# The patient metadata, raw: years, 0 male / 1 female, cm, kg (PTB-XL's columns; NaN = missing)
META_FIELDS = ("age", "sex", "height", "weight")


# PhysioNet/CinC Challenge 2021 reduced-lead sets.
LEAD_SUBSETS = {
    "12": LEADS,
    "6": ("I", "II", "III", "aVR", "aVL", "aVF"),
    "4": ("I", "II", "III", "V2"),
    "3": ("I", "II", "V2"),
    "2": ("I", "II"),
}


STUDENT_SUBSETS = ("2", "3", "4", "6")  # what `--leads all` means: the teacher alone reads 12


SPLITS = {"train": tuple(range(1, 9)), "val": (9,), "test": (10,)}


def parse_leads(spec: str | int) -> tuple[int, ...]:
    """Lead indices (PTB-XL order) for a named subset ('12', '6', '4', '3', '2') or names.

    Names are comma-separated and case-insensitive ('i,ii,avr' = I, II, aVR); order is kept.
    """
    spec = str(spec).strip()
    if spec in LEAD_SUBSETS:
        return tuple(LEADS.index(name) for name in LEAD_SUBSETS[spec])
    by_lower = {name.lower(): i for i, name in enumerate(LEADS)}
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n.lower() not in by_lower]
    if unknown or not names:
        raise UserError(
            f"unknown lead {', '.join(unknown) or repr(spec)!s}: expected one of "
            f"{', '.join(LEAD_SUBSETS)} or comma-separated names from {', '.join(LEADS)}"
        )
    idx = tuple(by_lower[n.lower()] for n in names)
    if len(set(idx)) != len(idx):
        raise UserError(f"lead list {spec!r} names a lead twice")
    return idx


def lead_label(idx: tuple[int, ...]) -> str:
    """The short name of a lead selection: its subset name if it is one, else the lead names."""
    for name, leads in LEAD_SUBSETS.items():
        if tuple(LEADS.index(n) for n in leads) == tuple(idx):
            return name
    return ",".join(LEADS[i] for i in idx)


def parse_lead_list(spec: str) -> list[str]:
    """'4', '2,3,4,6' or 'all' -> named student subsets (12 leads is the teacher's)."""
    if spec.strip() == "all":
        return list(STUDENT_SUBSETS)
    out = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in out if s not in STUDENT_SUBSETS]
    if bad or not out:
        raise UserError(
            f"--leads {spec}: expected named subsets from {', '.join(STUDENT_SUBSETS)} "
            f"(comma-separated) or 'all'"
        )
    return list(dict.fromkeys(out))


RECORD_SECONDS = 10
# Records in PTB-XL's database (1.0.1 and 1.0.3 alike): a folder with fewer is a subset.
PTBXL_RECORDS = 21837


# Written by synth.py beside a generated dataset: what is loaded from such a folder says so.
SYNTHETIC_MARKER = "raysearch-synthetic.json"
