"""`spc-gateway analyze` on the files people actually have, through the real command line: decimal
commas, ragged rows, too little data, negative options in scientific notation, and numbers at the
edges of the float range. Wrong input exits 1 with the row and the reason, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_helpers import REPO


def analyze(tmp_path: Path, text: str, *options: str) -> subprocess.CompletedProcess:
    path = tmp_path / "data.csv"
    path.write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "gateway.cli", "analyze", str(path), *options],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


VALUES = [10.2, 9.8, 10.1, 9.9, 10.4, 10.0, 9.7, 10.3]


def test_semicolon_file_with_decimal_commas_is_read_right(tmp_path):
    comma = analyze(tmp_path, "value;subgroup\n" + "".join(f"{str(v).replace('.', ',')};{i // 2}\n"
                                                           for i, v in enumerate(VALUES)))
    point = analyze(tmp_path, "value,subgroup\n" + "".join(f"{v},{i // 2}\n" for i, v in enumerate(VALUES)))
    assert comma.returncode == 0 == point.returncode, comma.stderr
    assert json.loads(comma.stdout) == json.loads(point.stdout)
    assert json.loads(comma.stdout)["limits"]["center"] == pytest.approx(sum(VALUES) / len(VALUES))


@pytest.mark.parametrize(("text", "words"), [
    # `1,5` in a comma-separated file is two cells: refused, with the likely cause
    ("value\n1,5\n2,5\n", [":2:", "row 1 has 2 cells but the header has 1 column", "decimal comma"]),
    ("subgroup,value\n1,2,5\n", [":2:", "3 cells", "2 columns", "2,5"]),
    ("value,note\n1.5,ok\n2.5,ok,extra\n", [":3:", "row 2 has 3 cells"]),
    # quoted: one cell, but a decimal comma cannot be told from a thousands separator
    ('value\n"1,5"\n"2,5"\n', [":2:", "'1,5' has a comma", "separated by ';'"]),
    ("value;subgroup\n1,5;1\n2.5;1\n", [":3:", "'2.5' uses '.'", "row 1 uses ','"]),
    ("value;subgroup\n1.234,5;1\n", [":2:", "both '.' and ','"]),
    ("value\n1_000\n2\n", [":2:", "'1_000' is not a number"]),
])
def test_ambiguous_numbers_and_ragged_rows_are_refused_with_the_row(tmp_path, text, words):
    refused(analyze(tmp_path, text), *words)


def test_trailing_empty_cells_are_harmless(tmp_path):
    result = analyze(tmp_path, "value\n" + "".join(f"{v},\n" for v in VALUES))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["subgroups"] == len(VALUES)


def test_too_little_data_is_a_clear_error(tmp_path):
    refused(analyze(tmp_path, "value\n1\n"), "only 1 value", "at least 2")
    refused(analyze(tmp_path, "value\n1\n2\n3\n", "--phase1", "1"), "--phase1 1", "at least 2")
    # with fixed limits one value is enough
    result = analyze(tmp_path, "value\n1\n", "--center", "1", "--sigma", "0.5")
    assert result.returncode == 0, result.stderr


def test_negative_options_in_scientific_notation(tmp_path):
    text = "value\n" + "".join(f"{v - 60}\n" for v in VALUES * 4)  # 32: enough for capability
    result = analyze(tmp_path, text, "--lsl", "-6e1", "--usl", "-4.5E+1", "--center", "-5e1", "--sigma", "1e-1")
    assert result.returncode == 0, result.stderr
    cap = json.loads(result.stdout)["capability"]
    assert cap["cp"] is not None
    assert json.loads(result.stdout)["limits"]["center"] == -50.0


def test_values_beyond_the_float_range_of_the_statistics(tmp_path):
    # 1e308 used to give null limits and exit 0
    refused(analyze(tmp_path, "value\n1\n2\n1e308\n3\n"), ":4:", "row 3", "'1e308'", "beyond")
    refused(analyze(tmp_path, "value\n1\n-1.5e100\n"), ":3:", "beyond")
    # all values subnormal: sigma zero or subnormal, which used to flag every point
    refused(analyze(tmp_path, "value\n" + "5e-324\n0\n" * 15), "too small to chart", "smallest normal float")
    refused(analyze(tmp_path, "value\n" + "5e-324\n" * 30), "sigma is zero")
    for option in (["--center", "0", "--sigma", "5e-324"], ["--center", "1e308", "--sigma", "1"],
                   ["--lsl", "-inf"], ["--usl", "nan"]):
        result = analyze(tmp_path, "value\n1\n2\n3\n", *option)
        assert result.returncode == 2 and "error" in result.stderr and "Traceback" not in result.stderr


def test_digits_of_other_scripts_are_not_numbers(tmp_path):
    """ASCII digits only, as the MQTT intake: Python's float() reads '١٠' and '１０' as 10."""
    good = "value\n" + "\n".join(str(10 + (i % 5) / 10) for i in range(20)) + "\n"
    for cell in ("١٠", "１０", "٣.٥"):
        result = analyze(tmp_path, good + cell + "\n")
        assert result.returncode == 1 and "is not a number" in result.stderr, (cell, result.stderr)
    option = analyze(tmp_path, good, "--lsl", "١٠")
    assert option.returncode == 2 and "'١٠' is not a number" in option.stderr, option.stderr
    assert analyze(tmp_path, good, "--lsl", "-9.5e0", "--usl", "1.05E+1").returncode == 0  # read, not refused
