"""The confusion matrix as the relation head reads it (docs/reference.md#transfer-classifier, #predicate-correlation):
loading, P, A and corr."""
from __future__ import annotations

import numpy as np
import pytest

from rebalance_hca.modeling.relation_head.confusion import (load_confusion_matrix, normalized_confusion,
                                                            predicate_correlation, transfer_matrix)

KEY = "MODEL.ROI_RELATION_HEAD.CONFUSION_MATRIX"

# Row 0 and column 0 are masked (C[0, 0] = 1), row 2 is then all zero:
#   masked = [[1, 0, 0], [0, 6, 2], [0, 0, 0]]   ->   P = [[1, 0, 0], [0, 6/8, 2/8], [0, 0, 0]]
COUNTS = np.array([[5.0, 2.0, 3.0],
                   [4.0, 6.0, 2.0],
                   [7.0, 0.0, 0.0]])
EXPECTED_P = np.array([[1.0, 0.0, 0.0],
                       [0.0, 0.75, 0.25],
                       [0.0, 0.0, 0.0]])


def test_normalized_confusion_masks_background_and_row_normalises():
    original = COUNTS.copy()
    normalized = normalized_confusion(COUNTS)
    assert normalized.dtype == np.float64
    np.testing.assert_allclose(normalized, EXPECTED_P, rtol=1e-7, atol=0)
    # the +1e-8 in the denominator: 6 / (8 + 1e-8), a relative change of about 1e-9
    assert normalized[1, 1] == pytest.approx(6.0 / (8.0 + 1e-8), rel=1e-15)
    assert np.array_equal(COUNTS, original)   # the input is not modified


def test_zero_rows_stay_zero_and_background_maps_to_itself():
    normalized = normalized_confusion(np.zeros((3, 3)))
    assert normalized[0, 0] == pytest.approx(1.0) and np.count_nonzero(normalized) == 1


def test_half_identity_is_half_of_p_plus_identity_for_nonzero_rows():
    transfer = transfer_matrix(COUNTS)   # the default form
    assert transfer.dtype == np.float32 and transfer.shape == (3, 3)
    expected = np.array([[1.0, 0.0, 0.0],       # ½([1, 0, 0] + [1, 0, 0])
                         [0.0, 0.875, 0.125],   # ½([0, .75, .25] + [0, 1, 0])
                         [0.0, 0.0, 1.0]])      # zero row of P: row-normalise([0, 0, 1]) = identity row
    np.testing.assert_allclose(transfer, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(transfer[:2], 0.5 * (EXPECTED_P + np.eye(3))[:2], rtol=1e-6, atol=1e-7)


def test_confusion_form_is_p():
    transfer = transfer_matrix(COUNTS, "confusion")
    assert transfer.dtype == np.float32
    np.testing.assert_allclose(transfer, EXPECTED_P, rtol=1e-6, atol=0)


def test_transfer_is_applied_as_logits_times_a_transposed():
    logits = np.array([[1.0, 2.0, 4.0]], dtype=np.float32)
    # new[1] = Σ_j A[1, j] old[j] = 0.875·2 + 0.125·4 = 2.25; new[0] = 1; new[2] = 4
    np.testing.assert_allclose(logits @ transfer_matrix(COUNTS).T, [[1.0, 2.25, 4.0]], rtol=1e-6)


def test_unknown_transfer_form_names_the_key_and_the_valid_values():
    with pytest.raises(ValueError, match="TRANSFER_MATRIX") as error:
        transfer_matrix(COUNTS, "identity")
    assert "'half_identity'" in str(error.value) and "'confusion'" in str(error.value)


def test_predicate_correlation_values():
    correlation = predicate_correlation(COUNTS)
    expected = np.array([[1.0 / 1.0001, 0.0, 0.0],
                         [0.0, 0.75 / 0.7501, 0.25 / 0.7501],   # 0.99986668, 0.33328889
                         [0.0, 0.0, 0.0]])                      # zero row: 0 / (0 + 1e-4)
    np.testing.assert_allclose(correlation, expected, rtol=1e-7, atol=0)


def test_correlation_equals_rb_column_then_row_normalisation():
    """RB divides row i by the sum of column i (+1e-8) and then row-normalises
    (docs/reference.md#predicate-correlation)."""
    counts = np.random.default_rng(0).integers(0, 50, size=(6, 6)).astype(np.float64)
    counts[3, :] = 0.0   # a zero row stays zero in both
    masked = counts.copy()
    masked[0, :], masked[:, 0], masked[0, 0] = 0.0, 0.0, 1.0
    scaled = masked / (masked.sum(axis=0)[:, None] + 1e-8)
    row_sums = scaled.sum(axis=1, keepdims=True)
    rb = np.divide(scaled, row_sums, out=np.zeros_like(scaled), where=row_sums > 0)
    rb_correlation = rb / (np.diag(rb)[:, None] + 1e-4)
    np.testing.assert_allclose(predicate_correlation(counts), rb_correlation, rtol=1e-7, atol=1e-12)


def test_non_square_input_is_rejected():
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        normalized_confusion(np.zeros((2, 3)))


def test_load_returns_float64_counts(tmp_path):
    path = tmp_path / "conf_mat_freq_train.npy"
    np.save(path, COUNTS.astype(np.int32))
    loaded = load_confusion_matrix(str(path), 3)
    assert loaded.dtype == np.float64 and np.array_equal(loaded, COUNTS)


def test_load_missing_file(tmp_path):
    path = str(tmp_path / "absent.npy")
    with pytest.raises(FileNotFoundError) as error:
        load_confusion_matrix(path, 3)
    message = str(error.value)
    assert KEY in message and path in message and "tools/compute_confusion_matrix.py" in message


@pytest.mark.parametrize("array, problem", [
    (np.zeros((3, 4)), r"expected shape \(3, 3\).*found \(3, 4\)"),
    (np.zeros(9), r"expected shape \(3, 3\).*found \(9,\)"),
    (np.array([[1.0, np.nan, 0], [0, 1, 0], [0, 0, 1]]), "non-finite"),
    (np.array([[1.0, np.inf, 0], [0, 1, 0], [0, 0, 1]]), "non-finite"),
    (np.array([[1.0, -2.0, 0], [0, 1, 0], [0, 0, 1]]), "negative"),
    (np.array([["a", "b", "c"]] * 3), "numeric"),
])
def test_load_bad_contents(tmp_path, array, problem):
    path = str(tmp_path / "bad.npy")
    np.save(path, array)
    with pytest.raises(ValueError, match=problem) as error:
        load_confusion_matrix(path, 3)
    assert KEY in str(error.value) and path in str(error.value)


@pytest.mark.parametrize("write", [
    lambda path: path.write_text("1 2 3\n4 5 6\n7 8 9\n"),                 # a text file
    lambda path: path.write_bytes(b""),                                     # an empty file
    lambda path: np.save(path, np.array([{"a": 1}], dtype=object)),         # pickled objects
])
def test_load_not_an_npy(tmp_path, write):
    path = tmp_path / "conf.npy"
    write(path)
    with pytest.raises(ValueError, match="not a readable .npy") as error:
        load_confusion_matrix(str(path), 3, key="MY.KEY")
    assert "MY.KEY" in str(error.value) and str(path) in str(error.value)


@pytest.mark.parametrize("array, problem", [
    (np.zeros((3, 3)), "counts no relation at all"),
    (np.array([[9.0, 4.0, 4.0], [4.0, 0.0, 0.0], [4.0, 0.0, 0.0]]), "counts no relation at all"),
    (np.array([[9.0, 4.0, 4.0], [4.0, 7.0, 0.0], [4.0, 0.0, 3.0]]), "counts only correct predictions"),
])
def test_load_refuses_a_matrix_without_predicate_correlation(tmp_path, array, problem):
    """Without an off-diagonal foreground count, corr is the identity's: stage 2 would change nothing."""
    path = str(tmp_path / "degenerate.npy")
    np.save(path, array)
    with pytest.raises(ValueError, match=problem) as error:
        load_confusion_matrix(path, 3)
    assert KEY in str(error.value) and path in str(error.value) and "\n" not in str(error.value)
    off_diagonal = predicate_correlation(array)[1:, 1:] * (1 - np.eye(2))
    assert not off_diagonal.any()
    np.save(path, array + np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]]))
    assert load_confusion_matrix(path, 3)[1, 2] == 1
