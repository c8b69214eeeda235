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
from rebalance_hca.data import json_number_arrays
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
                assert got.dtype == want.dtype and got.shape == want.shape, key
                assert got.tobytes() == want.tobytes(), key  # bit for bit: -0.0 is not 0.0
        else:
            assert read[key] == value, key


ACCEPTED = {
    "compact": '{"boxes":[[[1,2,3,4]],[]],"labels":[[5],[]],"pairs":[[[0,0,1]],[]]}',
    "JSON whitespace everywhere": ' \n{ "boxes" :\t[ [ [ 1 , 2 ,3,4 ] ,[5,6,7,8]\r\n] , [ ] ] ,\n"labels": [ [ 7, 8 ] '
                                  ', [] ] , "pairs" : [[ [0, 1, 2] ], [ ]] }\n\n',
    "signs, zero and 18 digits": '{"boxes": [[[-0, -12, 0, 987654321012345678]]], "labels": [[-999999999999999999, '
                                 '0, 10]], "pairs": [[[-1, 100, 3]]]}',
    "an integer that rounds in float64": '{"boxes": [[[9007199254740993, 1, 2, 3]]], "labels": [], "pairs": []}',
    "decimals": '{"boxes": [[[1.5, 0.25, -12.125, 1.05], [0.1, -0.0, -0, 3.0]], [[0.3, 2.675, 100.000000000001, '
                '7]]]}',
    "decimals at the exact limit": '{"boxes": [[[9007199254740.992, -900719925474099.2, 0.000000000000001, '
                                   '123456789012345.6]]]}',  # 2**53 = 9007199254740992
    "empty fields": '{"boxes": [], "labels": [], "pairs": []}',
    "empty records only": '{"boxes": [[], []], "labels": [[], []], "pairs": [[], [], []]}',
    "other fields and repeated keys, the last kept": '{"names": ["a\\"]", {"b": [1.5, null, true]}], "labels": '
                                                     '[[1]], "boxes": [], "labels": [[2, 3]], "x": -1.5e3}',
    "an empty object": '{}',
    "no number field": '{"names": ["[1, 2]"]}',
}

REJECTED = {  # each either invalid JSON, or valid JSON the reader leaves to json.load
    "a fraction among integers": '{"labels": [[1.5, 2]]}',
    "a whole fraction among integers": '{"pairs": [[[1.0, 2, 3]]]}',
    "an exponent": '{"labels": [[1e3]]}',
    "an exponent among decimals": '{"boxes": [[[1.5, 2E3, 3, 4]]]}',
    "a decimal beyond 2**53": '{"boxes": [[[900719925474099.33, 1, 2, 3]]]}',
    "a decimal of 19 digits": '{"boxes": [[[1.234567890123456789, 1, 2, 3]]]}',
    "a point without digits after it": '{"boxes": [[[1., 2, 3, 4]]]}',
    "a point without digits before it": '{"boxes": [[[.5, 2, 3, 4]]]}',
    "a point after a minus": '{"boxes": [[[-.5, 2, 3, 4]]]}',
    "two points": '{"boxes": [[[1.2.3, 2, 3, 4]]]}',
    "a leading zero before a point": '{"boxes": [[[00.5, 2, 3, 4]]]}',
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


# Pieces a field is read in: the default (one piece here), and pieces cut after almost every comma.
PIECES = {"one piece": json_number_arrays.CHUNK_BYTES, "many pieces": 3}


@pytest.fixture(params=sorted(PIECES))
def pieces(request, monkeypatch) -> None:
    monkeypatch.setattr(json_number_arrays, "CHUNK_BYTES", PIECES[request.param])


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_reads_the_values_json_load_and_flatten_column_give(tmp_path, case, pieces):
    path = _file(tmp_path, ACCEPTED[case])
    read = read_json_object_with_number_arrays(path, SHAPES)
    assert read is not None
    _assert_same(read, _as_json_reads_it(path))


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_leaves_everything_else_to_json_load(tmp_path, case, pieces):
    assert read_json_object_with_number_arrays(_file(tmp_path, REJECTED[case]), SHAPES) is None


def test_every_one_byte_change_is_read_exactly_or_left_to_json_load(tmp_path, pieces):
    """Each byte of a small valid file replaced by each of the characters that matter, or deleted: the reader
    returns None, or json.load accepts the result and gives the same values."""
    text = '{"boxes": [[[1, 20.5, 3, 4], [5, -6, 0.75, 80]], []], "labels": [[10, 2], []], "pairs": [[[0, 1, 2]]]}'
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


def test_random_decimals_and_integers_equal_float_and_int(tmp_path, monkeypatch):
    """20,000 random numbers, either sign: integers of 1 to 18 digits and decimals of at most 15 digits (the
    range where the digits m of a decimal stay below 2**53), the point anywhere: the reader's values are
    json.load's (``float`` of the text, or the integer)."""
    rng = np.random.default_rng(0)

    def digits(count: int) -> str:
        return "".join(map(str, rng.integers(0, 10, count)))

    numbers = []
    for _ in range(20_000):
        if rng.random() < 0.3:
            text = str(int(rng.integers(1, 10))) + digits(int(rng.integers(0, 18)))
        else:
            whole = int(rng.integers(0, 8))
            whole_part = str(int(rng.integers(1, 10))) + digits(whole - 1) if whole else "0"
            text = f"{whole_part}.{digits(int(rng.integers(1, 16 - len(whole_part))))}"
        numbers.append(("-" if rng.random() < 0.3 else "") + text)
    rows = ["[" + ", ".join(numbers[i:i + 4]) + "]" for i in range(0, len(numbers), 4)]
    path = _file(tmp_path, '{"boxes": [[' + "],\n[".join(rows) + ']]}')
    for piece_bytes in (json_number_arrays.CHUNK_BYTES, 1000):
        monkeypatch.setattr(json_number_arrays, "CHUNK_BYTES", piece_bytes)
        read = read_json_object_with_number_arrays(path, {"boxes": SHAPES["boxes"]})
        assert read is not None
        _assert_same(read, _as_json_reads_it(path))


def _release(root: str) -> dict[str, str]:
    """The edge-case GQA-200 release (integer and decimal boxes; the test file holds the skipped record);
    -> the two annotation files."""
    folder = write_gqa_release(root, EDGE_TRAIN, filler_test_records())
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
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), field.name
            else:
                assert got == want, field.name
    test = loaded["number arrays"][1]
    skipped = slice(test.box_offsets[SKIPPED_TEST_POSITION], test.box_offsets[SKIPPED_TEST_POSITION + 1])
    assert skipped.start == skipped.stop and test.image_files[SKIPPED_TEST_POSITION] == "ignored"


def test_gqa_files_with_exponents_are_read_by_json_load(tmp_path):
    train = [dict(EDGE_TRAIN[0], boxes=[[0, 0, 20.0, 20], [10, 10, 30, 30], [40, 5, 60, 40]])]
    path = os.path.join(write_gqa_release(str(tmp_path), train, train), "GQA_200_Train.json")
    with open(path) as handle:
        text = handle.read()
    with open(path, "w") as handle:
        handle.write(text.replace("20.0", "2e1"))
    assert read_json_object_with_number_arrays(path, gqa_files.NUMBER_FIELDS) is None
    assert gqa_files.load_gqa_annotations(path).boxes[0].tolist() == [0.0, 0.0, 20.0, 20.0]
