"""Writing SynthVG's VG150-format folder (docs/reference.md#vg150-data) byte-for-byte reproducibly: VG150's
files through ``data/vg/writer.py``, plus the GloVe file and SynthVG's marker. The folder is built with
``data.writing.staged_folder`` (``MARKER_FILE_NAME`` marks a folder that ``--overwrite`` may replace).
"""
from __future__ import annotations

import json
import os

from ..vg.writer import IMAGE_FOLDER_NAME, VGArrays, image_data_entry, vg_dictionaries, write_vg_files
from .vocabulary import ATTRIBUTES, OBJECT_CLASSES, PREDICATES
from .word_vectors import GLOVE_FILE_NAME, glove_text

MARKER_FILE_NAME = "SYNTHVG.json"


def image_data_entries(arrays: VGArrays, corrupted_sizes: dict[int, tuple[int, int]]) -> list[dict]:
    """image_data.json: one entry per h5 row, plus VG's corrupted ids (given with their (width, height)),
    in ascending id order."""
    entries = {int(image_id): (int(width), int(height))
               for image_id, width, height in zip(arrays.image_ids, arrays.widths, arrays.heights)}
    entries.update(corrupted_sizes)
    return [image_data_entry(image_id, width, height, f"synthvg://{IMAGE_FOLDER_NAME}/{image_id}.jpg")
            for image_id, (width, height) in sorted(entries.items())]


def write_annotation_files(folder: str, arrays: VGArrays, corrupted_sizes: dict[int, tuple[int, int]],
                           generation_info: dict) -> None:
    """The h5, the dicts json (alphabetical ids, counts over the generated data), image_data.json, the GloVe
    file and the SynthVG marker into ``folder``."""
    dictionaries = vg_dictionaries(sorted(OBJECT_CLASSES), sorted(PREDICATES), sorted(ATTRIBUTES), arrays.labels,
                                   arrays.predicates, arrays.attributes[arrays.attributes > 0])
    write_vg_files(folder, arrays, dictionaries, image_data_entries(arrays, corrupted_sizes))
    with open(os.path.join(folder, GLOVE_FILE_NAME), "w", encoding="utf-8") as handle:
        handle.write(glove_text())
    with open(os.path.join(folder, MARKER_FILE_NAME), "w", encoding="utf-8") as handle:
        json.dump(generation_info, handle, sort_keys=True, indent=1)
