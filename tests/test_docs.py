"""Every ```python block in README.md and docs/**/*.md runs, so a doc example that stops working fails CI.

The blocks of one file run in order in one namespace (a page's later examples may use its earlier
names), in a temporary working directory. A block whose info string says ``python no-run`` is not
run; the page must say beside it why (a GPU, a long training run).
"""
from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)


def python_blocks(text: str):
    """(line number, info string, source) of each ```python block."""
    for m in BLOCK.finditer(text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2)


def test_the_collector_finds_blocks_and_their_lines():
    text = "intro\n```python\nx = 1\n```\nmore\n```python no-run\ny = 2\n```\n```bash\nls\n```\n"
    assert list(python_blocks(text)) == [(2, "", "x = 1\n"), (6, "no-run", "y = 2\n")]


@pytest.mark.parametrize("page", [p for p in PAGES if "```python" in p.read_text()],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": f"doc:{page.name}"}
    for line, info, source in python_blocks(page.read_text()):
        if info == "no-run":
            continue
        assert info == "", f"{page.name}:{line}: unknown info string {info!r} (use 'python' or 'python no-run')"
        code = compile(source, f"{page.relative_to(ROOT)}:{line}", "exec")
        try:
            exec(code, namespace)  # noqa: S102 - the docs are this repository's own text
        except Exception as exc:  # re-raised with the block's place in the page
            raise AssertionError(f"{page.relative_to(ROOT)}, block at line {line} failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
