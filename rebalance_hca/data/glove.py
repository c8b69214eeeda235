"""GloVe class/predicate embeddings (docs/reference.md#glove-embeddings).

Reads ``GLOVE_DIR/glove.6B.<dim>d.txt`` once and caches the parsed table as ``glove.6B.<dim>d.pt`` beside
it, keyed to the text file (rebuilt when it changes); in a read-only GLOVE_DIR the cache is skipped with one
warning and the text file is parsed on every run. Nothing is ever downloaded.
"""
from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np
import torch

from ..utils.atomic import write_cache
from .files import DataFormatError, file_fingerprint

logger = logging.getLogger(__name__)
GLOVE_URL = "https://nlp.stanford.edu/data/glove.6B.zip"


def glove_paths(glove_dir: str, dim: int) -> tuple[str, str]:
    """(text file, cache file) for ``dim``-d vectors under ``glove_dir``."""
    stem = os.path.join(glove_dir, f"glove.6B.{dim}d")
    return stem + ".txt", stem + ".pt"


def load_glove_table(glove_dir: str, dim: int) -> tuple[dict[str, int], torch.Tensor]:
    """(word -> row, vectors (V, dim) float32) from the cache, else parsed from the text file."""
    text_file, cache_file = glove_paths(glove_dir, dim)
    have_text = os.path.isfile(text_file)
    if not have_text and not os.path.isfile(cache_file):
        raise DataFormatError(
            f"GloVe vectors not found: {text_file}. Download {GLOVE_URL}, unzip glove.6B.{dim}d.txt into "
            f"{os.path.abspath(glove_dir)} (or point GLOVE_DIR at the folder that holds it)."
        )
    fingerprint = list(file_fingerprint(text_file)) if have_text else None
    cached = _read_cache(cache_file, fingerprint, dim)
    if cached is not None:
        return cached
    words, vectors = parse_glove_text(text_file, dim)
    write_cache(cache_file, lambda stream: torch.save(
        {"fingerprint": fingerprint, "dim": dim, "words": words, "vectors": vectors}, stream))
    return {word: row for row, word in enumerate(words)}, vectors


def parse_glove_text(text_file: str, dim: int) -> tuple[list[str], torch.Tensor]:
    """Parse 'word v1 ... v_dim' lines of UTF-8 text. -> (words, (V, dim) float32); a malformed line raises
    DataFormatError naming the file and the line number."""
    words, rows = [], []
    with open(text_file, "rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            try:
                word, _, values = raw_line.decode("utf-8").rstrip("\n").partition(" ")
                vector = np.array(values.split(" "), dtype=np.float32) if values else np.empty(0, np.float32)
            except ValueError as error:  # not UTF-8, or a value that is not a number
                raise DataFormatError(f"{text_file}:{line_number}: expected a word and {dim} numbers ({error})") \
                    from error
            if vector.shape != (dim,):
                raise DataFormatError(
                    f"{text_file}:{line_number}: expected a word and {dim} numbers, got {vector.size} numbers"
                )
            words.append(word)
            rows.append(vector)
    if not words:
        raise DataFormatError(f"{text_file}: no vectors")
    return words, torch.from_numpy(np.stack(rows))


def _read_cache(cache_file: str, fingerprint, dim: int):
    if not os.path.isfile(cache_file):
        return None
    try:
        stored = torch.load(cache_file, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: rebuild from the text file
        logger.warning("GloVe cache %s is unreadable (%s); rebuilding it", cache_file, error)
        return None
    stale = stored.get("dim") != dim or (fingerprint is not None and stored.get("fingerprint") != fingerprint)
    if stale:
        if fingerprint is None:
            raise DataFormatError(f"{cache_file}: holds {stored.get('dim')}-d vectors, not {dim}-d")
        return None
    return {word: row for row, word in enumerate(stored["words"])}, stored["vectors"]


def embedding_for_names(names: Sequence[str], glove_dir: str, dim: int,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """One row per name (docs/reference.md#glove-embeddings):
    the name's vector, else that of its longest word (first on ties),
    else the row keeps its N(0, 1) random initialisation (e.g. ``__background__``). -> (len(names), dim)."""
    word_to_row, table = load_glove_table(glove_dir, dim)
    vectors = torch.randn(len(names), dim, generator=generator)
    missing = []
    for position, name in enumerate(names):
        longest_word = sorted(name.split(" "), key=len, reverse=True)[0]
        row = word_to_row.get(name, word_to_row.get(longest_word))
        if row is None:
            missing.append(name)
        else:
            vectors[position] = table[row]
    if missing:
        logger.info("no GloVe vector for %d name(s), kept random: %s", len(missing), missing)
    return vectors
