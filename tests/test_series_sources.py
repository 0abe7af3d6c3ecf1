"""Numeric series readers: exact values and shapes, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from archlab.data.sources.series import load_series_csv, load_ucr
from archlab.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- CSV


def test_csv_univariate_values_shapes_and_labels(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", "t0,t1,label,t2\n1,2,a,3\n4.5,-5,b,6e1\n")
    x, y = load_series_csv(path, "label")
    assert x.dtype == np.float32
    assert x.shape == (2, 3, 1)
    np.testing.assert_array_equal(x[:, :, 0], [[1, 2, 3], [4.5, -5, 60]])
    assert y.dtype.kind == "U"
    assert y.tolist() == ["a", "b"]


def test_csv_multifeature_is_time_major(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", "label,t0f0,t0f1,t1f0,t1f1,t2f0,t2f1\nx,0,10,1,11,2,12\n")
    x, y = load_series_csv(path, "label", num_features=2)
    assert x.shape == (1, 3, 2)
    np.testing.assert_array_equal(x[0], [[0, 10], [1, 11], [2, 12]])
    assert y.tolist() == ["x"]


def test_csv_skips_blank_lines_and_handles_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes(b"\xef\xbb\xbflabel,a,b\r\n1,1,2\r\n\r\n2,3,4\r\n")
    x, y = load_series_csv(path, "label")
    assert x.shape == (2, 2, 1)
    assert y.tolist() == ["1", "2"]


def test_csv_features_not_dividing_columns(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", "label,a,b,c\nx,1,2,3\n")
    with pytest.raises(DataError, match=r"m\.csv, line 1: 3 value columns.*num_features=2"):
        load_series_csv(path, "label", num_features=2)


def test_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv.*not found"):
        load_series_csv(tmp_path / "nope.csv", "label")


def test_csv_unknown_label_column_lists_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", "cls,a,b\n1,2,3\n")
    with pytest.raises(DataError) as err:
        load_series_csv(path, "label")
    msg = str(err.value)
    assert "s.csv, line 1" in msg and "'label'" in msg and "['cls', 'a', 'b']" in msg


def test_csv_ragged_row(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", "label,a,b\n1,2,3\n2,3\n")
    with pytest.raises(DataError, match=r"s\.csv, line 3: 2 fields, but the header has 3"):
        load_series_csv(path, "label")


def test_csv_non_numeric_names_column_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", "label,a,b\n1,2,3\n\n2,3,abc\n")
    with pytest.raises(DataError) as err:
        load_series_csv(path, "label")
    msg = str(err.value)
    assert "s.csv, line 4" in msg and "column 'b'" in msg and "'abc'" in msg


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", ""])
def test_csv_nan_inf_empty_say_clean_or_impute(tmp_path: Path, bad: str) -> None:
    path = _write(tmp_path / "s.csv", f"label,a,b\n1,2,3\n2,{bad},3\n")
    with pytest.raises(DataError, match=r"s\.csv, line 3: column 'a'.*[Cc]lean or impute"):
        load_series_csv(path, "label")


def test_csv_empty_file_and_header_only(tmp_path: Path) -> None:
    empty = _write(tmp_path / "e.csv", "")
    with pytest.raises(DataError, match=r"e\.csv: the file is empty"):
        load_series_csv(empty, "label")
    header_only = _write(tmp_path / "h.csv", "label,a\n\n")
    with pytest.raises(DataError, match=r"h\.csv: .*no data rows"):
        load_series_csv(header_only, "label")


def test_csv_non_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(b"label,a\n1,2\n\xff,3\n")
    with pytest.raises(DataError, match=r"s\.csv, line 3: .*UTF-8"):
        load_series_csv(path, "label")


# ---------------------------------------------------------------- UCR


def _ucr(tmp_path: Path, train: str, test: str, name: str = "Toy") -> Path:
    d = tmp_path / name
    d.mkdir()
    _write(d / f"{name}_TRAIN.tsv", train)
    _write(d / f"{name}_TEST.tsv", test)
    return d


def test_ucr_directory_and_train_file(tmp_path: Path) -> None:
    d = _ucr(tmp_path, "-1\t0.5\t1\t2\n1\t3\t4\t5\n", "1\t1\t1\t1\n-1\t-2\t0\t2.25\n2\t9\t9\t9\n")
    for path in (d, d / "Toy_TRAIN.tsv"):
        data = load_ucr(path)
        xtr, ytr = data["train"]
        xte, yte = data["test"]
        assert xtr.dtype == np.float32 and xtr.shape == (2, 3, 1)
        np.testing.assert_array_equal(xtr[:, :, 0], [[0.5, 1, 2], [3, 4, 5]])
        assert ytr.tolist() == ["-1", "1"]
        assert xte.shape == (3, 3, 1)
        np.testing.assert_array_equal(xte[1, :, 0], [-2, 0, 2.25])
        assert yte.tolist() == ["1", "-1", "2"]


def test_ucr_labels_kept_as_written(tmp_path: Path) -> None:
    d = _ucr(tmp_path, "1.0\t1\t2\n", "01\t1\t2\n")
    data = load_ucr(d)
    assert data["train"][1].tolist() == ["1.0"]
    assert data["test"][1].tolist() == ["01"]


def test_ucr_different_lengths_names_line_and_lengths(tmp_path: Path) -> None:
    d = _ucr(tmp_path, "1\t1\t2\t3\n2\t1\t2\n", "1\t1\t2\t3\n")
    with pytest.raises(DataError) as err:
        load_ucr(d)
    msg = str(err.value)
    assert "Toy_TRAIN.tsv, line 2" in msg and "length 2" in msg and "length 3" in msg


def test_ucr_train_test_length_mismatch(tmp_path: Path) -> None:
    d = _ucr(tmp_path, "1\t1\t2\t3\n", "1\t1\t2\n")
    with pytest.raises(DataError, match=r"Toy_TEST\.tsv: series have length 2.*length 3"):
        load_ucr(d)


def test_ucr_bad_values_name_file_and_line(tmp_path: Path) -> None:
    d = _ucr(tmp_path, "1\t1\t2\n", "1\t1\t2\n2\t1\tx\n")
    with pytest.raises(DataError, match=r"Toy_TEST\.tsv, line 2: value 2 .*'x'"):
        load_ucr(d)
    d2 = _ucr(tmp_path, "1\t1\t2\n2\tNaN\t3\n", "1\t1\t2\n", name="Gap")
    with pytest.raises(DataError, match=r"Gap_TRAIN\.tsv, line 2: .*[Cc]lean or impute"):
        load_ucr(d2)


def test_ucr_comma_separated_and_empty(tmp_path: Path) -> None:
    d = _ucr(tmp_path, "1,1,2\n", "1\t1\n")
    with pytest.raises(DataError, match=r"Toy_TRAIN\.tsv, line 1: .*tab-separated"):
        load_ucr(d)
    d2 = _ucr(tmp_path, "\n", "1\t1\n", name="Empty")
    with pytest.raises(DataError, match=r"Empty_TRAIN\.tsv: the file is empty"):
        load_ucr(d2)


def test_ucr_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_ucr(tmp_path / "Missing")
    d = tmp_path / "Half"
    d.mkdir()
    _write(d / "Half_TRAIN.tsv", "1\t1\n")
    with pytest.raises(DataError, match=r"Half_TEST\.tsv: the UCR test file is missing"):
        load_ucr(d)
    with pytest.raises(DataError, match=r"_TRAIN\.tsv"):
        load_ucr(_write(tmp_path / "other.tsv", "1\t1\n"))
