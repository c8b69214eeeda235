"""Reading a JSON object whose large fields are nested lists of numbers straight into numpy arrays, without one
Python object per number (docs/data.md#loading-speed).

``read_json_object_with_number_arrays(path, shapes)`` parses the top level of a JSON object with the standard
``json`` decoder, one field at a time; a field named in ``shapes`` whose text holds only brackets, commas,
numbers without exponents and whitespace is instead checked and tokenised with array operations over its bytes
(numpy: the digits converted by ``np.fromstring``, a decimal's value divided by its power of ten) into a
``NumberColumn`` (values plus CSR offsets per record), exactly the values ``json.load`` and
``json_columns.flatten_column`` give. It accepts a strict subset of what ``json.load`` accepts and returns None
for anything else: a file that is not pure ASCII, a truncated or malformed file, a field of another shape, a
number with an exponent, a decimal in an integer field, a number of more than 18 digits, a decimal whose
digits exceed 2**53. The caller then reads the file with ``read_json`` and reports any problem as before.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

# The bytes a number-array field may hold, by class (0: any other byte); a number is a run of digits, "." and
# "-", and its first byte stands for it in the sequence of symbols (brackets, commas, numbers) checked below.
OTHER, SPACE, OPEN, CLOSE, COMMA, DIGIT, POINT, MINUS = range(8)
NUMBER = DIGIT  # a number's class in the symbol sequence
_BYTE_CLASS = np.full(256, OTHER, dtype=np.uint8)
_BYTE_CLASS[list(b" \t\n\r")] = SPACE
_BYTE_CLASS[ord("[")], _BYTE_CLASS[ord("]")], _BYTE_CLASS[ord(",")] = OPEN, CLOSE, COMMA
_BYTE_CLASS[list(b"0123456789")], _BYTE_CLASS[ord(".")], _BYTE_CLASS[ord("-")] = DIGIT, POINT, MINUS
# Which symbol may follow which inside valid JSON arrays of arrays of numbers, indexed first * 8 + second.
_MAY_FOLLOW = np.zeros(64, dtype=bool)
_MAY_FOLLOW[[OPEN * 8 + OPEN, OPEN * 8 + NUMBER, OPEN * 8 + CLOSE, NUMBER * 8 + COMMA, NUMBER * 8 + CLOSE,
             COMMA * 8 + OPEN, COMMA * 8 + NUMBER, CLOSE * 8 + COMMA, CLOSE * 8 + CLOSE]] = True
_PUNCTUATION_TO_SPACE = bytes.maketrans(b"[],", b"   ")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
CHUNK_BYTES = 1 << 18  # the size of the pieces a number-array field is read in (small temporaries, reused)
MAX_DIGITS = 18  # every integer of at most 18 digits fits int64 exactly
EXACT_MANTISSA = 2 ** 53  # m / 10**k is correctly rounded when m <= 2**53 and k <= 22 (exact operands)
_POWERS_OF_TEN = 10.0 ** np.arange(MAX_DIGITS + 1)  # exact: every 10**k up to 10**22 is a float64
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class NumberArrayShape:
    """A field holding one list per record: of ``width`` numbers each (width > 0: a list of such rows) or of
    numbers (width 0); ``integer``: integers only (-> int64), else any finite numbers (-> float64)."""

    width: int
    integer: bool


@dataclass(frozen=True)
class NumberColumn:
    """A number-array field read into arrays. values: (rows, width) for width > 0, else (rows,); int64 or
    float64. offsets: (I + 1,) int64 CSR offsets of each record's rows."""

    values: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def with_record_emptied(self, record: int) -> "NumberColumn":
        """The same column with record ``record``'s rows removed (an empty list in its place)."""
        start, stop = int(self.offsets[record]), int(self.offsets[record + 1])
        offsets = self.offsets.copy()
        offsets[record + 1:] -= stop - start
        return NumberColumn(np.delete(self.values, np.s_[start:stop], axis=0), offsets)


def read_json_object_with_number_arrays(path: str, shapes: dict[str, NumberArrayShape]) -> dict | None:
    """The JSON object in ``path`` with the fields named in ``shapes`` as ``NumberColumn``s and the others as
    ``json.load`` gives them; None when the file is outside what this reader accepts (see the module)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if not data.isascii():
        return None
    text = data.decode("ascii")
    buffer = np.frombuffer(data, dtype=np.uint8)
    try:
        return _parse_object(data, text, buffer, shapes)
    except json.JSONDecodeError:
        return None


def _parse_object(data: bytes, text: str, buffer: np.ndarray, shapes: dict[str, NumberArrayShape]) -> dict | None:
    """The top-level object, its values parsed one by one; None or json.JSONDecodeError when malformed."""
    content = {}
    position = _WHITESPACE.match(text, 0).end()
    if text[position:position + 1] != "{":
        return None
    position = _WHITESPACE.match(text, position + 1).end()
    more = text[position:position + 1] != "}"
    while more:
        if text[position:position + 1] != '"':
            return None
        key, position = json.decoder.scanstring(text, position + 1)
        position = _WHITESPACE.match(text, position).end()
        if text[position:position + 1] != ":":
            return None
        position = _WHITESPACE.match(text, position + 1).end()
        if key in shapes:
            parsed = _number_array(data, buffer, position, text.find('"', position), shapes[key])
            if parsed is None:
                return None
            content[key], position = parsed
        else:
            content[key], position = _DECODER.raw_decode(text, position)
        position = _WHITESPACE.match(text, position).end()
        separator = text[position:position + 1]
        if separator not in (",", "}"):
            return None
        more = separator == ","
        position = _WHITESPACE.match(text, position + 1).end() if more else position
    return content if _WHITESPACE.match(text, position + 1).end() == len(text) else None


def _number_array(data: bytes, buffer: np.ndarray, start: int, stop: int, shape: NumberArrayShape
                  ) -> tuple[NumberColumn, int] | None:
    """The list of per-record lists starting at byte ``start`` (and ending before the next quote, byte ``stop``;
    -1: none) as a ``NumberColumn`` and the position after it; None when it is not such a list of numbers
    without exponents, of at most 18 digits, decimals within float64's exact range (``_decimal_values``). Read
    in pieces of about ``CHUNK_BYTES`` cut after a comma (``_scan_piece``), so that the array temporaries stay
    small and are reused; buffer: the file's (B,) uint8 view."""
    end = data.rfind(b"]", start, stop if stop >= 0 else len(data)) + 1
    if end <= start or data[start] != ord("["):
        return None
    levels = 3 if shape.width else 2  # inside the outer list, a record's list, a row's list
    depth, symbols_before = 0, 0
    pieces = []
    piece_start = start
    while piece_start < end:
        piece_end = data.find(b",", piece_start + CHUNK_BYTES, end) + 1 or end
        piece = _scan_piece(data, buffer, piece_start, piece_end, start, depth, levels, shape.integer)
        if piece is None:
            return None
        depth, symbols = piece["depth"], piece.pop("symbols")
        for key in ("records", "row_opens", "row_closes", "numbers"):
            piece[key] += symbols_before
        symbols_before += symbols
        pieces.append(piece)
        piece_start = piece_end
    if depth != 0:
        return None
    records, row_opens, row_closes, numbers, values = (
        np.concatenate([piece[key] for piece in pieces])
        for key in ("records", "row_opens", "row_closes", "numbers", "values"))
    if shape.width and (row_closes - row_opens != 2 * shape.width).any():
        return None  # "[n, n, ..., n]" spans 2 * width symbols
    counted = row_opens if shape.width else numbers
    offsets = np.append(np.searchsorted(counted, records), len(counted)).astype(np.int64)
    return NumberColumn(values.reshape(-1, shape.width) if shape.width else values, offsets), end


def _scan_piece(data: bytes, buffer: np.ndarray, piece_start: int, piece_end: int, start: int, depth: int,
                levels: int, integer: bool) -> dict | None:
    """Check and read the bytes [piece_start, piece_end) of a number-array field that starts at byte ``start``,
    nested ``depth`` deep where the piece starts: its values, its depth where it ends, its symbol count, and the
    symbol indices (within the piece) of its record opens, row opens, row closes and numbers; None when a check
    fails. A piece after the first starts after a comma and is read with that comma, so that every
    check of a byte's neighbours and of a symbol's successor sees across the cut. Every check is an array
    operation over the piece's bytes or symbols (brackets, commas, numbers), never a Python loop over them."""
    before = 1 if piece_start > start else 0  # the comma that ends the previous piece
    region = buffer[piece_start - before:piece_end]
    classes = _BYTE_CLASS[region]
    if not classes.all():
        return None  # a byte of no number array (OTHER is 0): a quote, a letter, an exponent, ...
    digit = classes == DIGIT
    in_number = classes >= DIGIT
    signs_and_points = np.flatnonzero(classes > DIGIT)  # never the first or last byte: a bracket or a comma
    is_minus = classes[signs_and_points] == MINUS
    minus, points = signs_and_points[is_minus], signs_and_points[~is_minus]
    if points.size and integer:
        return None
    digit_or_point = (classes - DIGIT) < 2  # uint8 wraps below DIGIT
    leading_zero = region[1:-1] == ord("0")
    leading_zero &= digit[2:]
    leading_zero &= ~digit_or_point[:-2]  # a zero after a digit or a point leads nothing
    if in_number[minus - 1].any() or (classes[minus + 1] != DIGIT).any() or \
            (classes[points - 1] != DIGIT).any() or (classes[points + 1] != DIGIT).any() or leading_zero.any() or \
            _has_run(digit_or_point, MAX_DIGITS + 1):
        return None  # "-" not alone before the digits, a point not between digits, a leading zero, too long
    symbol = classes > SPACE  # the first byte of a number, a bracket or a comma
    symbol[1:] &= ~(in_number[1:] & in_number[:-1])
    symbols = np.minimum(classes[symbol], NUMBER)
    if not _MAY_FOLLOW[symbols[:-1] * 8 + symbols[1:]].all():
        return None
    symbols = symbols[before:]
    open_symbol, close_symbol, number_symbol = symbols == OPEN, symbols == CLOSE, symbols == NUMBER
    depths = np.cumsum(open_symbol.view(np.int8) - close_symbol.view(np.int8), dtype=np.int8)
    depths += depth
    inner = depths if data[piece_end - 1] == ord(",") else depths[:-1]  # the field's last "]" closes to 0
    if inner.min(initial=1) < 1 or (open_symbol & (depths > levels)).any() or \
            (number_symbol & (depths != levels)).any():
        return None  # unbalanced, nested too deep, or a number where a list belongs
    values = np.fromstring(data[piece_start:piece_end].translate(_PUNCTUATION_TO_SPACE, b"."), dtype=np.int64,
                           sep=" ") if number_symbol.any() else np.zeros(0, dtype=np.int64)
    if len(values) != np.count_nonzero(number_symbol):
        return None  # not one value per number (np.fromstring read them otherwise)
    if not integer:  # the digits of each decimal were read with its point dropped
        values = _decimal_values(values, in_number, minus, points)
        if values is None:
            return None
    return {"values": values, "depth": int(depths[-1]) if len(depths) else depth, "symbols": len(symbols),
            "records": np.flatnonzero(open_symbol & (depths == 2)),
            "row_opens": np.flatnonzero(open_symbol & (depths == 3)),
            "row_closes": np.flatnonzero(close_symbol & (depths == 2)),
            "numbers": np.flatnonzero(number_symbol) if levels == 2 else np.zeros(0, dtype=np.int64)}


def _decimal_values(digits: np.ndarray, in_number: np.ndarray, minus: np.ndarray,
                    points: np.ndarray) -> np.ndarray | None:
    """(T,) float64 values of the numbers whose digits (the point dropped) are ``digits`` (T,) int64, in byte
    order; in_number: (B,) bool over the field's bytes; minus, points: the positions of "-" and ".". A decimal
    m / 10**k (k digits after the point) is one correctly rounded division of exact operands when
    m <= 2**53, the value ``float()`` gives (Clinger's fast path); None when a decimal needs more."""
    if not points.size:
        return digits.astype(np.float64)
    ends = np.flatnonzero(in_number[:-1] & ~in_number[1:]) + 1  # (T,) one past each number's last byte
    if len(points) == len(ends) and (points < ends).all() and (points[1:] > ends[:-1]).all():
        decimal = np.arange(len(ends))  # every number a decimal (as json.dump writes floats): no search
    else:
        decimal = np.searchsorted(ends, points, side="right")
        if (decimal[1:] <= decimal[:-1]).any():
            return None  # two points in one number
    scale = np.zeros(len(digits), dtype=np.int64)
    scale[decimal] = ends[decimal] - points - 1
    if ((scale > 0) & (np.abs(digits) > EXACT_MANTISSA)).any():
        return None  # too many digits for an exact division
    values = digits / _POWERS_OF_TEN[scale]  # integers: divided by 1.0, as int64 -> float64 rounds them
    signed = np.searchsorted(ends, minus, side="right")
    values[signed[(digits[signed] == 0) & (scale[signed] > 0)]] = -0.0  # "-0.0" is -0.0 (an integer "-0" is 0)
    return values


def _has_run(mask: np.ndarray, length: int) -> bool:
    """Whether ``mask`` (bool) holds ``length`` consecutive True values."""
    run, covered = mask, 1  # run[i]: mask[i:i + covered] all True
    while covered < length:
        step = min(covered, length - covered)
        run = run[:-step] & run[step:]
        covered += step
    return bool(run.any())
