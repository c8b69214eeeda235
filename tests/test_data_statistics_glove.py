"""Frequency statistics (docs/reference.md#frequency-statistics),
their cache, and GloVe embeddings (docs/reference.md#glove-embeddings)."""
import errno
import logging
import os

import numpy as np
import pytest
import torch

from rebalance_hca.data import DataFormatError
from rebalance_hca.data.glove import embedding_for_names, glove_paths
from rebalance_hca.data.split_index import SplitIndex
from rebalance_hca.data.statistics import count_statistics
from rebalance_hca.data.vg.statistics import load_or_compute_statistics

from vg_fixture import FixtureImage, box, write_fixture


@pytest.fixture
def read_only(monkeypatch):
    """make(folder): chmod it 0o555 and, where that does not stop writes (root), make ``os.open`` refuse to
    create files in it with EROFS, as on a read-only mount. Also lets the project's warnings reach caplog."""
    monkeypatch.setattr(logging.getLogger("rebalance_hca"), "propagate", True)
    folders = []

    def make(folder) -> str:
        folder = os.path.abspath(folder)
        os.chmod(folder, 0o555)
        folders.append(folder)
        if os.access(folder, os.W_OK):
            real_open = os.open

            def refuse_writes(path, flags, *args, **kwargs):
                writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                if writing and os.path.dirname(os.path.abspath(path)) == folder:
                    raise OSError(errno.EROFS, "Read-only file system", path)
                return real_open(path, flags, *args, **kwargs)

            monkeypatch.setattr(os, "open", refuse_writes)
        return folder

    yield make
    for folder in folders:
        os.chmod(folder, 0o755)


def warnings_in(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def statistics_fixture():
    overlapping = [box(0, 0, 100, 100), box(50, 50, 200, 200), box(600, 600, 700, 700)]
    return [
        # val carve-out (num_val_im=1): never counted
        FixtureImage(split=0, boxes=overlapping, labels=[3, 3, 3], relations=[(0, 1, 1)]),
        # boxes 0 and 1 overlap, box 2 is apart: bg pairs (cup, man) and (man, cup) only
        FixtureImage(split=0, boxes=overlapping, labels=[1, 2, 3],
                     relations=[(0, 1, 3), (0, 1, 3), (1, 0, 1), (0, 2, 2)]),
        # no overlapping pair: every ordered pair of distinct boxes counts
        FixtureImage(split=0, boxes=[box(0, 0, 100, 100), box(500, 500, 600, 600)], labels=[2, 3],
                     relations=[(0, 1, 2)]),
        FixtureImage(split=2, boxes=overlapping, labels=[1, 1, 1], relations=[(0, 1, 1)]),
    ]


def test_statistics_counts_by_hand(tmp_path):
    paths = write_fixture(str(tmp_path), statistics_fixture())
    stats = load_or_compute_statistics(paths["roidb_file"], paths["dict_file"], num_val_im=1)
    fg = stats.fg_matrix
    # Overlap filter (IoU > 0, +1): (0, 2) of image 1 is dropped; image 2's only relation is apart, so
    # image 2 leaves the statistics split entirely.
    assert fg[1, 2, 3] == 2 and fg[2, 1, 1] == 1
    assert fg[:, :, 1:].sum() == 3
    expected_bg = np.ones((4, 4), dtype=np.int64)
    expected_bg[1, 2] += 1
    expected_bg[2, 1] += 1
    assert stats.bg_matrix.tolist() == expected_bg.tolist()
    assert (fg[:, :, 0] == stats.bg_matrix).all()
    # pred_dist = log(fg / fg.sum(-1) + 1e-3); for (cup, man): fg = [2, 0, 0, 2] -> [log .501, log .001, ...]
    np.testing.assert_allclose(stats.pred_dist[1, 2], np.log([0.501, 0.001, 0.001, 0.501]), rtol=1e-6)
    assert stats.pred_dist.dtype == np.float32


def _statistics_one_pair_at_a_time(labels, boxes, box_counts, relations, num_classes, num_predicates):
    """fg and bg counted per relation and per ordered box pair, the intersection as SGB's float64 clipped width
    times clipped height > 0; pred_dist over the whole matrix at once."""
    fg = np.zeros((num_classes, num_classes, num_predicates), dtype=np.int64)
    bg = np.ones((num_classes, num_classes), dtype=np.int64)
    start = 0
    for count, image_relations in zip(box_counts, relations):
        image_labels, image_boxes = labels[start:start + count], boxes[start:start + count].astype(np.float64)
        for subject, obj, predicate in image_relations:
            fg[image_labels[subject], image_labels[obj], predicate] += 1
        pairs = [(i, j) for i in range(count) for j in range(count) if i != j]
        overlapping = [(i, j) for i, j in pairs if
                       max(min(image_boxes[i, 2], image_boxes[j, 2]) - max(image_boxes[i, 0], image_boxes[j, 0]), 0)
                       * max(min(image_boxes[i, 3], image_boxes[j, 3]) - max(image_boxes[i, 1], image_boxes[j, 1]), 0)
                       > 0]
        for i, j in overlapping or pairs:
            bg[image_labels[i], image_labels[j]] += 1
        start += count
    fg[:, :, 0] = bg
    return fg, bg, np.log(fg / fg.sum(2)[:, :, None] + 1e-3).astype(np.float32)


COORDINATES = {  # the boxes, from integer corners in [0, 40): many touching and 1-pixel overlaps
    "integers": lambda boxes: boxes,
    "integers below 2**24": lambda boxes: boxes + (2 ** 24 - 64),
    "integers from 2**24": lambda boxes: boxes + 2 ** 24,  # float32 would round odd ones
    "quarter pixels near 2**23": lambda boxes: boxes / 4 + 2 ** 23,  # float32 would round to integers
    "tiny (products underflow in float32)": lambda boxes: boxes * 1e-30,
    "tinier (products underflow in float64)": lambda boxes: boxes * 1e-170,
    "int32": lambda boxes: boxes.astype(np.int32),
}


@pytest.mark.parametrize("coordinates", sorted(COORDINATES))
def test_vectorised_statistics_equal_a_count_one_pair_at_a_time(coordinates):
    generator = np.random.default_rng(0)
    box_counts = generator.integers(1, 8, size=60)
    corners = generator.integers(0, 40, size=(box_counts.sum(), 2, 2))
    boxes = COORDINATES[coordinates](np.concatenate([corners.min(1), corners.max(1)], axis=1).astype(np.float64))
    labels = generator.integers(1, 5, size=box_counts.sum())
    relations = [np.stack([generator.integers(0, count, size=3), generator.integers(0, count, size=3),
                           generator.integers(1, 4, size=3)], axis=1) for count in box_counts]
    index = SplitIndex(np.arange(len(box_counts)), np.concatenate([[0], np.cumsum(box_counts)[:-1]]), box_counts,
                       np.arange(0, 3 * len(box_counts) + 1, 3), np.concatenate(relations))
    got = count_statistics(labels, boxes, index, 5, 4)
    fg, bg, pred_dist = _statistics_one_pair_at_a_time(labels, boxes, box_counts, relations, 5, 4)
    np.testing.assert_array_equal(got.fg_matrix, fg)
    np.testing.assert_array_equal(got.bg_matrix, bg)
    np.testing.assert_array_equal(got.pred_dist, pred_dist)
    assert got.pred_dist.dtype == np.float32


def test_bg_counts_all_pairs_when_nothing_overlaps(tmp_path):
    images = statistics_fixture()
    images[2].relations = [(0, 1, 2)]
    images[2].boxes = [box(0, 0, 100, 100), box(90, 90, 200, 200)]   # overlapping now: still one pair each way
    paths = write_fixture(str(tmp_path / "a"), images)
    with_overlap = load_or_compute_statistics(paths["roidb_file"], paths["dict_file"], num_val_im=1)
    assert with_overlap.bg_matrix[2, 3] == 2 and with_overlap.bg_matrix[3, 2] == 2
    assert with_overlap.fg_matrix[2, 3, 2] == 1


def test_statistics_cache_reused_then_rebuilt_when_source_changes(tmp_path):
    paths = write_fixture(str(tmp_path), statistics_fixture())
    cache = str(tmp_path / "out" / "stats.cache")
    first = load_or_compute_statistics(paths["roidb_file"], paths["dict_file"], 1, cache_file=cache)
    assert os.path.isfile(cache)
    assert not [name for name in os.listdir(tmp_path / "out") if name.endswith(".tmp")]
    mtime = os.stat(cache).st_mtime_ns
    again = load_or_compute_statistics(paths["roidb_file"], paths["dict_file"], 1, cache_file=cache)
    assert os.stat(cache).st_mtime_ns == mtime and (again.fg_matrix == first.fg_matrix).all()

    images = statistics_fixture()
    images[1].relations = [(0, 1, 3)]
    write_fixture(str(tmp_path), images)          # rewrites the h5: the cache is stale
    rebuilt = load_or_compute_statistics(paths["roidb_file"], paths["dict_file"], 1, cache_file=cache)
    assert rebuilt.fg_matrix[1, 2, 3] == 1


def test_truncated_cache_is_never_read(tmp_path):
    paths = write_fixture(str(tmp_path), statistics_fixture())
    cache = str(tmp_path / "stats.cache")
    with open(cache, "wb") as handle:
        handle.write(b"PK\x03\x04 half a file")
    stats = load_or_compute_statistics(paths["roidb_file"], paths["dict_file"], 1, cache_file=cache)
    assert stats.fg_matrix[1, 2, 3] == 2


def test_statistics_cache_in_a_read_only_folder_warns_once_and_computes(tmp_path, read_only, caplog):
    paths = write_fixture(str(tmp_path), statistics_fixture())
    (tmp_path / "out").mkdir()
    folder = read_only(tmp_path / "out")
    for _ in range(2):
        stats = load_or_compute_statistics(paths["roidb_file"], paths["dict_file"], 1,
                                           cache_file=os.path.join(folder, "stats.cache"))
        assert stats.fg_matrix[1, 2, 3] == 2
    assert os.listdir(folder) == []
    warnings = warnings_in(caplog)
    assert len(warnings) == 1 and folder in warnings[0]


def write_glove(folder, rows, dim=3):
    text_file, _ = glove_paths(str(folder), dim)
    with open(text_file, "w") as handle:
        for word, vector in rows:
            handle.write(word + " " + " ".join(str(v) for v in vector) + "\n")


def test_glove_exact_then_longest_word_then_random(tmp_path):
    write_glove(tmp_path, [("man", [1, 2, 3]), ("front", [4, 5, 6]), ("on", [7, 8, 9]), ("in", [0, 0, 1])])
    names = ["__background__", "man", "in front of", "on", "sitting on"]
    vectors = embedding_for_names(names, str(tmp_path), 3, generator=torch.Generator().manual_seed(0))
    assert vectors[1].tolist() == [1, 2, 3]
    assert vectors[2].tolist() == [4, 5, 6]          # longest word of "in front of"
    assert vectors[3].tolist() == [7, 8, 9]
    random_rows = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    assert vectors[0].tolist() == random_rows[0].tolist()   # background keeps N(0, 1)
    assert vectors[4].tolist() == random_rows[4].tolist()   # "sitting" unknown, not "on"


def test_glove_cache_written_and_rebuilt(tmp_path):
    write_glove(tmp_path, [("man", [1, 2, 3])])
    embedding_for_names(["man"], str(tmp_path), 3)
    assert os.path.isfile(glove_paths(str(tmp_path), 3)[1])
    write_glove(tmp_path, [("man", [3, 2, 1, ])])
    os.utime(glove_paths(str(tmp_path), 3)[0], ns=(1, 1))
    assert embedding_for_names(["man"], str(tmp_path), 3)[0].tolist() == [3, 2, 1]


def test_glove_in_a_read_only_folder_warns_once_and_uses_the_parsed_vectors(tmp_path, read_only, caplog):
    write_glove(tmp_path, [("man", [1, 2, 3])])
    folder = read_only(tmp_path)
    for _ in range(2):
        assert embedding_for_names(["man", "cup"], folder, 3)[0].tolist() == [1, 2, 3]
    assert os.listdir(folder) == ["glove.6B.3d.txt"]
    warnings = warnings_in(caplog)
    assert len(warnings) == 1 and folder in warnings[0]


def test_glove_missing_names_the_file_to_download(tmp_path):
    with pytest.raises(DataFormatError, match=r"glove\.6B\.200d\.txt.*glove\.6B\.zip"):
        embedding_for_names(["man"], str(tmp_path), 200)


def test_glove_malformed_line(tmp_path):
    write_glove(tmp_path, [("man", [1, 2, 3]), ("cup", [1, 2])])
    with pytest.raises(DataFormatError, match=r"glove\.6B\.3d\.txt:2: expected a word and 3 numbers"):
        embedding_for_names(["man"], str(tmp_path), 3)


@pytest.mark.parametrize("line, problem", [
    (b"cup 1 abc 3\n", "could not convert string to float: 'abc'"),
    (b"\xff\xfe 1 2 3\n", "'utf-8' codec can't decode byte 0xff"),
])
def test_glove_line_that_does_not_parse_names_the_file_and_line(tmp_path, line, problem):
    write_glove(tmp_path, [("man", [1, 2, 3])])
    with open(tmp_path / "glove.6B.3d.txt", "ab") as stream:
        stream.write(line)
    with pytest.raises(DataFormatError, match=r"glove\.6B\.3d\.txt:2: expected a word and 3 numbers \(.*\)$") as error:
        embedding_for_names(["man"], str(tmp_path), 3)
    assert problem in str(error.value)
