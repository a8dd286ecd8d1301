"""The documents stand on their own (issue 24, item 6): none cites a file outside the repository
(the design notes, the seeds or the benchmark harness beside it), and every relative link of a
document points at a file that exists."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
SKIP = {"node_modules", "target", ".git"}
OUTSIDE = re.compile(r"\.\./shared|shared/design|shared/seeds|shared/bench")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def documents():
    for path in ROOT.rglob("*.md"):
        if not SKIP & set(path.relative_to(ROOT).parts):
            yield path


def test_no_document_cites_a_file_outside_the_repository():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in documents()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, "\n".join(found)


def test_relative_links_point_at_files_that_exist():
    broken = []
    for path in documents():
        for target in LINK.findall(path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, "\n".join(broken)
