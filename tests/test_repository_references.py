"""The repository stands on its own: no tracked file points outside it, and every pointer into
docs/reference.md names a heading that exists there.

Forbidden everywhere (one line each, naming file and line): citations of the project's former internal notes
(the word SPEC in capitals, a section sign followed by a number, ROADMAP, DESIGN.md), relative paths that
leave the checkout (``../shared``) and absolute paths of the machine it was written on (``/work/``). The only
exception: the three tests that read the optional real VG150 files from ``../shared/vg`` beside the checkout
(and skip when it is absent) may name that folder.

Pointers are ``docs/reference.md#<anchor>`` (code, README) or ``reference.md#<anchor>`` (links between pages
in docs/), optionally followed by more anchors of the same page:
``docs/reference.md#stage-1, #stage-2 / #rebalanced-split``. Anchors follow GitHub's rule: the heading in
lower case, spaces as hyphens, other punctuation dropped.
"""
from __future__ import annotations

import functools
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PAGE = "docs/reference.md"
THIS_FILE = "tests/test_repository_references.py"

FORBIDDEN = {
    "a citation of the internal SPEC notes": re.compile(r"\bSPEC\b"),
    "a section-sign citation": re.compile(r"§\s*\d"),
    "a path into ../shared (outside the repository)": re.compile(r"\.\./shared"),
    "an absolute /work/ path": re.compile(r"/work/"),
    "a name of the internal notes (ROADMAP, DESIGN.md)": re.compile(r"\bROADMAP\b|\bDESIGN\.md\b"),
    "a path component 'shared' (outside the repository)": re.compile(r"""["']shared["']"""),
}
# The tests that read the real VG150 files from ../shared/vg (optional; they skip when it is absent).
FIXTURE_READERS = {
    "tests/test_data_pipeline.py",
    "tests/test_relation_loss.py",
    "tests/test_eval_zeroshot.py",
}
ALLOWED_IN_FIXTURE_READERS = {
    "a path into ../shared (outside the repository)": re.compile(r"\.\./shared/vg\b"),
    "a path component 'shared' (outside the repository)": re.compile(r"""["']shared["']\s*(?:,|/)\s*["']vg["']"""),
}

POINTER = re.compile(r"reference\.md#[\w-]+(?:\s*(?:,|/|and)\s*#[\w-]+)*")
ANCHOR = re.compile(r"#([\w-]+)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")


@functools.lru_cache(maxsize=1)
def tracked_text_files() -> dict[str, str]:
    """{repository-relative path: text} of every tracked file that decodes as UTF-8 text."""
    try:
        listing = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True,
                                 check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"the repository's file list needs git and a git checkout: {error}")
    files = {}
    for name in filter(None, listing.split("\0")):
        path = REPO_ROOT / name
        if not path.is_file():          # deleted in the working tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            files[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return files


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation (other than '-' and '_') dropped,
    spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def heading_anchors(markdown: str) -> list[str]:
    """Anchors of the headings of a markdown page, in order, skipping fenced code blocks."""
    anchors, in_fence = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match:
            anchors.append(github_anchor(match.group(1)))
    return anchors


def test_no_reference_outside_the_repository():
    problems = []
    for name, text in tracked_text_files().items():
        if name == THIS_FILE:           # it spells the forbidden patterns out
            continue
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in FORBIDDEN.items():
                if not pattern.search(line):
                    continue
                allowed = ALLOWED_IN_FIXTURE_READERS.get(what) if name in FIXTURE_READERS else None
                if allowed is not None and not pattern.search(allowed.sub("", line)):
                    continue
                problems.append(f"{name}:{number}: {what}: {line.strip()[:120]}")
    assert not problems, ("point at docs/reference.md#<anchor> or name the reference in words instead:\n"
                          + "\n".join(problems))


def test_fixture_reader_exception_names_tracked_tests():
    files = tracked_text_files()
    assert FIXTURE_READERS <= set(files), f"allowed fixture readers no longer tracked: {FIXTURE_READERS - set(files)}"


def test_reference_page_anchors_are_unique():
    anchors = heading_anchors((REPO_ROOT / REFERENCE_PAGE).read_text(encoding="utf-8"))
    duplicated = sorted(anchor for anchor, count in Counter(anchors).items() if count > 1)
    assert not duplicated, f"{REFERENCE_PAGE}: headings with the same anchor: {duplicated}"


def test_every_pointer_into_the_reference_page_exists():
    files = tracked_text_files()
    anchors = set(heading_anchors(files[REFERENCE_PAGE]))
    missing = []
    for name, text in files.items():
        for number, line in enumerate(text.splitlines(), 1):
            pointers = [m.group(0) for m in POINTER.finditer(line)]
            if name == REFERENCE_PAGE:  # its own links: ](#anchor)
                pointers += re.findall(r"\]\((#[\w-]+)\)", line)
            for pointer in pointers:
                missing += [f"{name}:{number}: #{anchor}" for anchor in ANCHOR.findall(pointer)
                            if anchor not in anchors]
    assert not missing, f"anchors that {REFERENCE_PAGE} does not have:\n" + "\n".join(missing)


def test_pointer_forms_are_recognised():
    """The pointer grammar the two tests above rely on, on the forms the code uses."""
    line = "(docs/reference.md#vg150-split-selection, #rebalanced-split / #oi-loading) and (reference.md#modes)"
    found = [ANCHOR.findall(m.group(0)) for m in POINTER.finditer(line)]
    assert found == [["vg150-split-selection", "rebalanced-split", "oi-loading"], ["modes"]]
    assert github_anchor("Per-class NMS decoding") == "per-class-nms-decoding"
    assert github_anchor("GQA-200 release") == "gqa-200-release"
    assert github_anchor("Hybrid co-attention (RB's SHA_Context)") == "hybrid-co-attention-rbs-sha_context"
    assert heading_anchors("# A\n```\n# not a heading\n```\n## B c\n") == ["a", "b-c"]
