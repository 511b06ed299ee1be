"""The repository's documents: README length and set-up commands, relative links that resolve,
no citation of a design file that is not in the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
LINKED_DOCS = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def test_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= 350


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    text = FENCE.sub("", doc.read_text())  # links inside code blocks are not links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # http(s), mailto, anchors within the page
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"{doc.name}: links to missing files: {broken}"


def test_no_citation_of_a_missing_design_file() -> None:
    roots = [ROOT / name for name in ("emofuse", "tests", "bench", "configs", "docs")]
    files = [README] + [
        p
        for r in roots
        for p in r.rglob("*")
        if p.suffix in (".py", ".md", ".yaml") and p != Path(__file__)
    ]
    citing = [str(p.relative_to(ROOT)) for p in files if "DESIGN" + ".md" in p.read_text()]
    assert not citing, f"cite docs/design.md instead: {citing}"


def test_readme_opens_with_the_two_setup_commands() -> None:
    blocks = [b.strip() for b in FENCE.findall(README.read_text())]
    assert blocks[0] == "bash scripts/demo.sh"
    assert "bash scripts/setup.sh" in blocks[1] and "pytest" in blocks[1]


def test_readme_python_api_is_emofuse_all() -> None:
    """The section names every public name, and imports from emofuse only public ones."""
    import emofuse

    text = README.read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    assert "from emofuse import EmotionRecognizer" in section
    missing = [name for name in emofuse.__all__ if name not in section]
    assert not missing, f"README's Python API section does not mention {missing}"
    imported = {name.strip() for line in re.findall(r"^from emofuse import (.+)$", section, re.M)
                for name in line.split(",")}  # fmt: skip
    assert imported <= set(emofuse.__all__), imported - set(emofuse.__all__)
