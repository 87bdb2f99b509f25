"""The vocabulary: lead subsets by name and index, the search's lead list."""

import pytest

from raysearch.data.schema import STUDENT_SUBSETS, lead_label, parse_lead_list, parse_leads
from raysearch.errors import UserError
from raysearch.reporting.table import PAPER_VAL_AUC, TABLE_ROWS


def test_lead_subsets():
    assert parse_leads("12") == tuple(range(12))
    assert parse_leads("6") == (0, 1, 2, 3, 4, 5)
    assert parse_leads("4") == (0, 1, 2, 7)
    assert parse_leads("3") == (0, 1, 7)
    assert parse_leads("2") == (0, 1)
    assert parse_leads("i, AVR ,v6") == (0, 3, 11)
    assert lead_label(parse_leads("I,II,V2")) == "3"
    assert lead_label(parse_leads("V1,V2")) == "V1,V2"
    for bad in ("V7", "5", "I,I", ""):
        with pytest.raises(UserError):
            parse_leads(bad)


def test_lead_list_of_a_search():
    assert parse_lead_list("all") == ["2", "3", "4", "6"] == list(STUDENT_SUBSETS)
    assert parse_lead_list("4, 2,4") == ["4", "2"]  # order kept, duplicates dropped
    for bad in ("12", "5", "", "I,II"):
        with pytest.raises(UserError, match="expected named subsets"):
            parse_lead_list(bad)


def test_paper_table_covers_every_row():
    assert set(PAPER_VAL_AUC) == set(TABLE_ROWS)
    assert all(set(PAPER_VAL_AUC[r]) == {"student", "baseline"} for r in STUDENT_SUBSETS)
