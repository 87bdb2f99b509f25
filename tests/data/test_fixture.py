"""The repository's PTB-XL fixture is the published data, byte for byte."""

import hashlib

from conftest import FIXTURE, FIXTURE_SUMS, SUBSET_RECORDS, extract_fixture


def test_fixture_files_match_the_release_checksums(tmp_path):
    root = extract_fixture(tmp_path)
    sums = dict(line.split()[::-1] for line in FIXTURE_SUMS.read_text().splitlines())
    assert len(sums) == 2 * SUBSET_RECORDS + 1  # .hea + .dat per record, scp_statements.csv
    for rel, digest in sums.items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest, rel
    rows = (root / "ptbxl_database.csv").read_text().splitlines()
    assert len(rows) == SUBSET_RECORDS + 1 and FIXTURE.stat().st_size < 6_000_000
