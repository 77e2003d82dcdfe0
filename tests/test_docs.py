"""The docs stand alone and stay true: links stay inside the repository, MONEY.md's examples are the code's."""

import re
from pathlib import Path

import pytest

from app.affiliate.commission import reversed_share, split

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {"instance", "node_modules", "__pycache__"}
FENCED = re.compile(r"^```.*?^```[ \t]*$", re.S | re.M)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
AUTOLINK = re.compile(r"<([a-z][a-z0-9+.-]*:[^>\s]+)>", re.I)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LOOPBACK = re.compile(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?(/|$)")


def markdown_files() -> list[Path]:
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not any(part.startswith(".") or part in SKIPPED_DIRS for part in path.relative_to(ROOT).parts)
    )


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(path: Path) -> set[str]:
    text = FENCED.sub("", path.read_text(encoding="utf-8"))
    return {_anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def targets(path: Path) -> list[str]:
    """Every link target in a markdown file outside code blocks, and every code span that names a path with `../`."""
    text = FENCED.sub("", path.read_text(encoding="utf-8"))
    found = [m.group(1) for pattern in (INLINE_LINK, REFERENCE, AUTOLINK) for m in pattern.finditer(text)]
    found += [m.group(1) for m in CODE_SPAN.finditer(text) if m.group(1).startswith("../")]
    return found


def problem(path: Path, target: str) -> str | None:
    """Why a target leads outside the repository (or nowhere), or None when it stays inside."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
        return None if LOOPBACK.match(target) else "points outside the repository"
    file_part, _, fragment = target.partition("#")
    resolved = (ROOT / file_part.lstrip("/")) if file_part.startswith("/") else (path.parent / file_part)
    resolved = resolved.resolve()
    if not resolved.is_relative_to(ROOT):
        return "leaves the repository"
    if not resolved.exists():
        return "names a file that does not exist"
    if fragment and resolved.suffix == ".md" and fragment not in anchors_of(resolved):
        return f"names a heading #{fragment} that {resolved.name} does not have"
    return None


def test_markdown_links_stay_inside_the_repository():
    files = markdown_files()
    assert ROOT / "README.md" in files and ROOT / "docs" / "MONEY.md" in files
    problems = [
        f"{path.relative_to(ROOT)}: {target} {why}"
        for path in files
        for target in targets(path)
        if (why := problem(path, target))
    ]
    assert not problems, "\n".join(problems)


def test_the_link_check_finds_what_leaves():
    readme = ROOT / "README.md"
    assert problem(readme, "../shared/DESIGN.md") == "leaves the repository"
    assert problem(readme, "https://example.com/") == "points outside the repository"
    assert problem(readme, "docs/NOWHERE.md") == "names a file that does not exist"
    assert problem(readme, "docs/MONEY.md#no-such-heading") is not None
    assert problem(readme, "docs/MONEY.md#the-commission-split") is None
    assert problem(readme, "http://127.0.0.1:8000/api/docs") is None


def tables(path: Path) -> list[list[dict[str, str]]]:
    """The markdown tables of a file, each as rows keyed by the header's cells."""
    found, block = [], []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(block) > 2:
            found.append([dict(zip(block[0], row)) for row in block[2:]])
        block = []
    return found


def money_table(*columns: str) -> list[dict[str, int]]:
    matching = [t for t in tables(ROOT / "docs" / "MONEY.md") if t and list(t[0]) == list(columns)]
    assert len(matching) == 1, f"MONEY.md has one table with the columns {columns}"
    return [{name: int(value) for name, value in row.items()} for row in matching[0]]


SPLIT_COLUMNS = ("paid_fen", "seller_bp", "level1_bp", "level2_bp", "host_bp", "content_bp")
SHARE_COLUMNS = ("seller_fen", "level1_fen", "level2_fen", "host_fen", "content_fen", "platform_fen")


@pytest.mark.parametrize("row", money_table(*SPLIT_COLUMNS, *SHARE_COLUMNS))
def test_money_split_examples_are_the_codes(row):
    shares = split(**{name: row[name] for name in SPLIT_COLUMNS})
    assert {name: getattr(shares, name) for name in SHARE_COLUMNS} == {name: row[name] for name in SHARE_COLUMNS}


@pytest.mark.parametrize("row", money_table("paid_fen", "refunded_fen", "share_fen", "reversed_fen"))
def test_money_refund_examples_are_the_codes(row):
    reversed_fen = reversed_share(
        share_fen=row["share_fen"], paid_fen=row["paid_fen"], refunded_fen=row["refunded_fen"]
    )
    assert reversed_fen == row["reversed_fen"]
