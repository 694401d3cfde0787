"""The user documentation works: README.md and docs/*.md (docs/interface.md §1).

- every ```python block of README.md and docs/*.md runs, in a folder that holds one
  tiny finished run at ``runs/demo`` (so ``runs/demo/...`` paths in examples resolve);
- every ``docs/<page>.md §N`` cited in the repository names an existing page and a
  heading of it that starts with N;
- no file of the product (README, docs, library packages) cites the requirement
  folder outside the repository.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import TINY_TOML

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]

#: A fenced Python block: the opening fence, the body, the closing fence.
_PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
#: ``docs/<page>.md`` and one or more ``§N`` (``§2, §5``, ``§1–§3``, ``§3 and §4``).
_CITATION = re.compile(r"docs/([a-z_]+)\.md((?:\s*(?:,|–|-|and|or)?\s*§[0-9][0-9.]*)+)")
_SECTION = re.compile(r"§([0-9][0-9.]*)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.*)$", re.M)
#: Any fenced block (its ``#`` lines are code comments, not headings).
_FENCED = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
#: A mechanism page cited without its folder in front: readers cannot tell where
#: the page lives.
_BARE_CITATION = re.compile(r"(?<![\w/.])(?:cgm|cgsv|nash|contract|interface)\.md §")
#: Folders whose files are the product; none may point outside the repository.
_PRODUCT = (
    "README.md",
    "docs",
    "data",
    "gan",
    "valuation",
    "rewards",
    "pipeline",
    "synthreward",
)


def _python_blocks() -> list[tuple[str, int, str]]:
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for k, match in enumerate(_PYTHON_BLOCK.finditer(text)):
            blocks.append((page.relative_to(ROOT).as_posix(), k, match.group(1)))
    return blocks


def _repo_files() -> list[Path]:
    """Every file of the project's folders (no git needed: CI may run anywhere)."""
    top = [ROOT / name for name in ("README.md", "Makefile", "pyproject.toml")]
    folders = (*_PRODUCT[1:], "tests", "bench")
    found = [
        p
        for folder in folders
        for p in (ROOT / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    return sorted(p for p in [*top, *found] if p.exists())


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # deleted in the working tree, or binary
        return None


def _heading_starts_with(headings: list[str], number: str) -> bool:
    """Whether a heading's text starts with ``number`` as a whole section number.

    ``3`` matches ``3. Decisions`` and ``3 Decisions`` but neither ``3.2 ...`` nor
    ``30. ...``; ``3.2`` matches ``3.2 Learning rate`` and ``3.2. ...``.
    """
    pattern = re.compile(re.escape(number) + r"(?:\.?(?:\s|$))")
    return any(pattern.match(h) for h in headings)


BLOCKS = _python_blocks()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding one tiny finished ``all`` run at ``runs/demo``; built once."""
    from pipeline.cli import main

    folder = tmp_path_factory.mktemp("docs")
    config = folder / "tiny.toml"
    config.write_text(TINY_TOML)
    run_dir = folder / "runs" / "demo"
    args = ["all", "--run-dir", str(run_dir), "--config", str(config), "--quiet"]
    assert main(args) == 0
    return folder


@pytest.mark.parametrize(
    ("page", "index", "code"),
    BLOCKS,
    ids=[f"{page}[{index}]" for page, index, _ in BLOCKS],
)
def test_python_block_runs(
    page: str,
    index: int,
    code: str,
    finished_run: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: the examples' relative paths resolve against a finished run
    monkeypatch.chdir(finished_run)
    # Act / Assert: the block runs without an exception
    exec(compile(code, f"{page} python block {index}", "exec"), {"__name__": "__doc__"})


def test_cited_sections_exist() -> None:
    # Prepare: the headings of every docs page
    headings = {
        p.stem: _HEADING.findall(_FENCED.sub("", p.read_text(encoding="utf-8")))
        for p in DOCS.glob("*.md")
    }
    missing = set()
    # Act: every citation in every file of the repository
    for path in _repo_files():
        text = _text(path)
        if text is None or "docs/" not in text:
            continue
        for match in _CITATION.finditer(text):
            page = match.group(1)
            for number in _SECTION.findall(match.group(2)):
                number = number.rstrip(".")
                if page not in headings:
                    missing.add(f"docs/{page}.md (no such page) §{number}")
                elif not _heading_starts_with(headings[page], number):
                    missing.add(f"docs/{page}.md §{number}")
    # Assert
    assert not missing, "cited but missing:\n" + "\n".join(sorted(missing))


def test_citations_name_the_docs_folder() -> None:
    # Act: mechanism pages cited without docs/ in front
    bare = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}"
        for path in _repo_files()
        if (text := _text(path)) is not None
        for m in _BARE_CITATION.finditer(text)
    ]
    # Assert
    assert not bare, "cite docs/<page>.md, not <page>.md:\n" + "\n".join(bare)


def test_product_does_not_point_outside_the_repository() -> None:
    # Act: the equivalent of grep -rn "shared/" over the product folders
    hits = [
        f"{rel}:{n}"
        for path in _repo_files()
        if (rel := path.relative_to(ROOT).as_posix()).split("/")[0] in _PRODUCT
        and (text := _text(path)) is not None
        for n, line in enumerate(text.splitlines(), 1)
        if "shared/" in line
    ]
    # Assert
    assert not hits, (
        "product files cite a folder outside the repository:\n" + "\n".join(hits)
    )
