"""The documentation cannot silently rot: the README stays short, every relative link in README.md
and docs/*.md reaches an existing file (and heading, for a #anchor), and every `file:line` of
docs/algorithm.md's equation table still holds the code it names, under a comment naming the
paper's symbol."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200
EQUATION_SECTION = "## The paper's equations in the code"
# the paper's equations the table must cover (issue 20): symbols as written in the table and comments
REQUIRED_SYMBOLS = ("E(X_{t_i})", "h_i^-", "h_i", "z_{t_0}", "z_{t_1}, ..., z_{t_T}", "F(t_i)", "X_hat(t_i)",
                    "M(t_i)", "W(F(t_i), .)", "Y_hat_{t_i}", "L_recon", "L_diff", "L_adv^img", "L_adv^seq",
                    "L_D^img", "L_D^seq")
COMMENT_REACH = 3  # the symbol's comment is on the line itself or at most this many lines above

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
ROW_REF = re.compile(r"^`([^`:]+):(\d+)`$")


def doc_files() -> list[Path]:
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def prose(text: str) -> str:
    """The text without fenced code blocks (whose '#' lines are comments, not headings)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading text: lower case, punctuation dropped, spaces -> hyphens."""
    s = heading.strip().lower().replace("`", "")
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading of a markdown text (repeated headings get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for line in prose(text).splitlines():
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if not m:
            continue
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(path: Path) -> list[str]:
    """Each relative link of a markdown file whose target file (or #heading) does not exist."""
    text = path.read_text(encoding="utf-8")
    bad = []
    for target in LINK.findall(INLINE_CODE.sub("", prose(text))):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{path.name}: ({target}): no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            bad.append(f"{path.name}: ({target}): no heading with anchor #{anchor} in {dest.name}")
    return bad


def equation_rows(text: str) -> list[tuple[str, str, int, str]]:
    """(symbol, file, line, code) of each row of the equation table."""
    start = text.index(EQUATION_SECTION)
    end = text.find("\n## ", start + 1)
    rows = []
    for line in text[start:end if end > 0 else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) != 4 or not ROW_REF.match(cells[2]):
            continue
        path, lineno = ROW_REF.match(cells[2]).groups()
        rows.append((cells[0].strip("`"), path, int(lineno), cells[3].strip("`")))
    return rows


def row_errors(root: Path, symbol: str, path: str, lineno: int, code: str) -> list[str]:
    """What is wrong with one table row: the file, the line, the code on it, the symbol's comment."""
    where = f"`{path}:{lineno}` ({symbol})"
    f = root / path
    if not f.is_file():
        return [f"{where}: no file {path}"]
    lines = f.read_text(encoding="utf-8").splitlines()
    if not 1 <= lineno <= len(lines):
        return [f"{where}: {path} has {len(lines)} lines"]
    errors = []
    if code not in lines[lineno - 1]:
        now = [i + 1 for i, l in enumerate(lines) if code in l and not l.lstrip().startswith("#")]
        hint = f"; it is now at line {now[0]}" if len(now) == 1 else ""
        errors.append(f"{where}: the line does not contain `{code}`{hint}")
    reach = lines[max(0, lineno - 1 - COMMENT_REACH):lineno]
    if not any("#" in l and symbol in l[l.index("#"):] for l in reach):
        errors.append(f"{where}: no comment naming {symbol} on the line or the {COMMENT_REACH} above it")
    return errors


# ------------------------------------------------------------------ the project's docs

def test_readme_is_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines, at most {README_MAX_LINES}: move a topic to docs/"


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: p.name)
def test_relative_links_resolve(path):
    assert broken_links(path) == []


def test_every_doc_is_reachable_from_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(readme)}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert missing == [], f"docs not linked from README.md: {missing}"


def test_equation_table_points_at_the_code():
    rows = equation_rows((ROOT / "docs" / "algorithm.md").read_text(encoding="utf-8"))
    symbols = {r[0] for r in rows}
    assert [s for s in REQUIRED_SYMBOLS if s not in symbols] == [], "equations missing from the table"
    errors = [e for r in rows for e in row_errors(ROOT, *r)]
    assert errors == [], "\n".join(errors)
    assert all(p.startswith("models/") and not p.startswith("models/performance/") for _, p, _, _ in rows)


# ------------------------------------------------------------------ the checks themselves catch rot

def test_link_check_catches_a_missing_file_and_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Second part: `x`\n", encoding="utf-8")
    doc = tmp_path / "b.md"
    doc.write_text("[ok](a.md) [ok](a.md#second-part-x) [ok](#here) [web](https://x.org/y)\n"
                   "# Here\n```\n[in code](nowhere.md)\n```\n"
                   "[gone](missing.md) [bad anchor](a.md#third)\n", encoding="utf-8")
    bad = broken_links(doc)
    assert len(bad) == 2 and "missing.md" in bad[0] and "#third" in bad[1]


def test_equation_check_catches_moved_code_and_a_lost_comment(tmp_path):
    (tmp_path / "m.py").write_text("x = 1\n# L_recon = mean |y - t|\nloss = (y - t).abs().mean()\n"
                                   "z = 2\n", encoding="utf-8")
    doc = (f"{EQUATION_SECTION}\n\n| symbol | eq | where | code |\n|---|---|---|---|\n"
           "| `L_recon` | L1 | `m.py:3` | `loss = (y - t)` |\n"
           "| `L_recon` | L1 | `m.py:2` | `loss = (y - t)` |\n"
           "| `L_diff` | L1 | `m.py:4` | `z = 2` |\n"
           "| `L_diff` | L1 | `m.py:9` | `z = 2` |\n\n## next\n| `a` | b | `m.py:1` | `x` |\n")
    rows = equation_rows(doc)
    assert len(rows) == 4
    assert row_errors(tmp_path, *rows[0]) == []
    assert "now at line 3" in row_errors(tmp_path, *rows[1])[0]
    assert "no comment naming L_diff" in row_errors(tmp_path, *rows[2])[0]
    assert "has 4 lines" in row_errors(tmp_path, *rows[3])[0]


def test_slugs_are_githubs():
    assert slug("What differs from the paper's code, and why") == "what-differs-from-the-papers-code-and-why"
    assert slug("1. Options") == "1-options"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}
