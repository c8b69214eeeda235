"""The array reader of large JSON number fields (``rebalance_hca/data/json_number_arrays.py``, used by the
GQA-200 loader; docs/data.md#loading-speed): where it reads a file, exactly the arrays that ``json.load`` and
``flatten_column`` give; elsewhere None, so that the loader reads the file with ``json.load`` and reports a
problem as before. The GQA-200 annotations are identical whichever reader read them."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from gqa_fixture import EDGE_TRAIN, SKIPPED_TEST_POSITION, filler_test_records, write_gqa_release
from rebalance_hca.data.gqa import files as gqa_files
from rebalance_hca.data.json_columns import flatten_column, read_json
from rebalance_hca.data.json_number_arrays import NumberArrayShape, NumberColumn, \
    read_json_object_with_number_arrays

SHAPES = {"boxes": NumberArrayShape(width=4, integer=False), "labels": NumberArrayShape(width=0, integer=True),
          "pairs": NumberArrayShape(width=3, integer=True)}


def _file(tmp_path, text: str | bytes) -> str:
    path = str(tmp_path / "content.json")
    with open(path, "wb") as handle:
        handle.write(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _as_json_reads_it(path: str) -> dict:
    """The object as ``read_json`` parses it, its number fields flattened by ``flatten_column``."""
    content = read_json(path)
    return {key: NumberColumn(*flatten_column(path, value, key, SHAPES[key].width, SHAPES[key].integer))
            if key in SHAPES else value for key, value in content.items()}


def _assert_same(read: dict, expected: dict) -> None:
    assert list(read) == list(expected)
    for key, value in expected.items():
        if isinstance(value, NumberColumn):
            for got, want in ((read[key].values, value.values), (read[key].offsets, value.offsets)):
                assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), key
        else:
            assert read[key] == value, key


ACCEPTED = {
    "compact": '{"boxes":[[[1,2,3,4]],[]],"labels":[[5],[]],"pairs":[[[0,0,1]],[]]}',
    "JSON whitespace everywhere": ' \n{ "boxes" :\t[ [ [ 1 , 2 ,3,4 ] ,[5,6,7,8]\r\n] , [ ] ] ,\n"labels": [ [ 7, 8 ] '
                                  ', [] ] , "pairs" : [[ [0, 1, 2] ], [ ]] }\n\n',
    "signs, zero and 18 digits": '{"boxes": [[[-0, -12, 0, 987654321012345678]]], "labels": [[-999999999999999999, '
                                 '0, 10]], "pairs": [[[-1, 100, 3]]]}',
    "an integer that rounds in float64": '{"boxes": [[[9007199254740993, 1, 2, 3]]], "labels": [], "pairs": []}',
    "empty fields": '{"boxes": [], "labels": [], "pairs": []}',
    "empty records only": '{"boxes": [[], []], "labels": [[], []], "pairs": [[], [], []]}',
    "other fields and repeated keys, the last kept": '{"names": ["a\\"]", {"b": [1.5, null, true]}], "labels": '
                                                     '[[1]], "boxes": [], "labels": [[2, 3]], "x": -1.5e3}',
    "an empty object": '{}',
    "no number field": '{"names": ["[1, 2]"]}',
}

REJECTED = {  # each either invalid JSON, or valid JSON the reader leaves to json.load
    "a fraction": '{"boxes": [[[1.5, 2, 3, 4]]]}',
    "an exponent": '{"labels": [[1e3]]}',
    "19 digits": '{"labels": [[1234567890123456789]]}',
    "a 19-digit negative": '{"labels": [[-1234567890123456789]]}',
    "a leading zero": '{"labels": [[012]]}',
    "a plus sign": '{"labels": [[+1]]}',
    "a lone minus": '{"labels": [[-]]}',
    "two minus signs": '{"labels": [[--1]]}',
    "an inner minus": '{"labels": [[1-2]]}',
    "a trailing minus": '{"labels": [[1, 2-]]}',
    "a missing comma": '{"labels": [[1 2]]}',
    "two commas": '{"labels": [[1,,2]]}',
    "a leading comma": '{"labels": [[,1]]}',
    "a trailing comma": '{"labels": [[1,]]}',
    "lists without a comma": '{"labels": [[1][2]]}',
    "NaN": '{"labels": [[NaN]]}',
    "Infinity": '{"boxes": [[[1, 2, 3, Infinity]]]}',
    "a string": '{"labels": [["1"]]}',
    "null": '{"labels": [[null]]}',
    "true": '{"labels": [[true]]}',
    "a number where a record's list belongs": '{"labels": [[1], 2]}',
    "a list where a number belongs": '{"labels": [[1, [2]]]}',
    "a row of three numbers": '{"boxes": [[[1, 2, 3]]]}',
    "a row of five numbers": '{"boxes": [[[1, 2, 3, 4, 5]]]}',
    "an empty row": '{"pairs": [[[]]]}',
    "a number not in a row": '{"pairs": [[1, 2, 3]]}',
    "not a list": '{"labels": 3}',
    "a truncated field": '{"labels": [[1, 2], [3',
    "a truncated number field before another field": '{"labels": [[1, 2], [3], "boxes": []}',
    "an extra bracket": '{"labels": [[1]]], "boxes": []}',
    "an unclosed object": '{"labels": [[1]]',
    "a trailing comma in the object": '{"labels": [[1]],}',
    "text after the object": '{"labels": [[1]]} x',
    "a second object": '{"labels": [[1]]}{}',
    "not an object": '[[1]]',
    "a key that is not a string": '{labels: [[1]]}',
    "a missing colon": '{"labels" [[1]]}',
    "a non-ASCII name": '{"names": ["\u00e9"], "labels": [[1]]}',
    "a UTF-8 byte order mark": '\ufeff{"labels": [[1]]}',
    "an empty file": '',
    "a field without a value": '{"labels": ',
    "a field with an empty value": '{"labels": }',
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_reads_the_values_json_load_and_flatten_column_give(tmp_path, case):
    path = _file(tmp_path, ACCEPTED[case])
    read = read_json_object_with_number_arrays(path, SHAPES)
    assert read is not None
    _assert_same(read, _as_json_reads_it(path))


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_leaves_everything_else_to_json_load(tmp_path, case):
    assert read_json_object_with_number_arrays(_file(tmp_path, REJECTED[case]), SHAPES) is None


def test_every_one_byte_change_is_read_exactly_or_left_to_json_load(tmp_path):
    """Each byte of a small valid file replaced by each of the characters that matter, or deleted: the reader
    returns None, or json.load accepts the result and gives the same values."""
    text = '{"boxes": [[[1, 20, 3, 4], [5, -6, 7, 80]], []], "labels": [[10, 2], []], "pairs": [[[0, 1, 2]]]}'
    variants = [text[:i] + text[i + 1:] for i in range(len(text))]
    variants += [text[:i] + c + text[i + 1:] for i in range(len(text)) for c in '[],0-.e "1x:{}']
    read_count = 0
    for variant in variants:
        path = _file(tmp_path, variant)
        read = read_json_object_with_number_arrays(path, SHAPES)
        if read is not None:
            read_count += 1
            _assert_same(read, _as_json_reads_it(path))
    assert read_count > len(text)  # digits changed into other digits and the like are read


def _release(root: str) -> dict[str, str]:
    """A GQA-200 release whose train file has integer boxes (the reader's case) and whose test file holds the
    skipped record; -> the two annotation files."""
    integer_train = [dict(r, boxes=[[round(v) for v in box] for box in r["boxes"]]) for r in EDGE_TRAIN]
    folder = write_gqa_release(root, integer_train, filler_test_records())
    return {name: os.path.join(folder, f"GQA_200_{name}.json") for name in ("Train", "Test")}


def test_gqa_annotations_identical_with_and_without_the_array_reader(tmp_path, monkeypatch):
    files = _release(str(tmp_path))
    reads = []

    def counted(path, shapes):
        content = read_json_object_with_number_arrays(path, shapes)
        reads.append(content is not None)
        return content

    loaded = {}
    for reader in ("number arrays", "json only"):
        gqa_files._load_annotations_cached.cache_clear()
        monkeypatch.setattr(gqa_files, "read_json_object_with_number_arrays",
                            counted if reader == "number arrays" else lambda path, shapes: None)
        loaded[reader] = [gqa_files.load_gqa_annotations(files["Train"]),
                          gqa_files.load_gqa_annotations(files["Test"], ignored_record=SKIPPED_TEST_POSITION)]
    gqa_files._load_annotations_cached.cache_clear()
    assert reads == [True, True]
    for fast, slow in zip(loaded["number arrays"], loaded["json only"]):
        for field in dataclasses.fields(fast):
            got, want = getattr(fast, field.name), getattr(slow, field.name)
            if isinstance(want, np.ndarray):
                assert got.dtype == want.dtype and np.array_equal(got, want), field.name
            else:
                assert got == want, field.name
    test = loaded["number arrays"][1]
    skipped = slice(test.box_offsets[SKIPPED_TEST_POSITION], test.box_offsets[SKIPPED_TEST_POSITION + 1])
    assert skipped.start == skipped.stop and test.image_files[SKIPPED_TEST_POSITION] == "ignored"


def test_gqa_files_with_fractional_boxes_are_read_by_json_load(tmp_path):
    folder = write_gqa_release(str(tmp_path), EDGE_TRAIN, EDGE_TRAIN)  # record 1 has boxes such as 1.5
    path = os.path.join(folder, "GQA_200_Train.json")
    assert read_json_object_with_number_arrays(path, gqa_files.NUMBER_FIELDS) is None
    assert gqa_files.load_gqa_annotations(path).boxes[3].tolist() == [1.5, 2.5, 30.25, 40.0]
    with open(path) as handle:
        assert json.load(handle)["gt_boxes_all"][1][0] == [1.5, 2.5, 30.25, 40.0]
