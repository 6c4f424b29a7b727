"""The README's Python example runs as written (from the repository root, next to ../shared)."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, SHARED


def test_readme_example_runs():
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the README's Python section has one python example"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 5, code
    if SHARED.resolve() != (REPO.parent / "shared").resolve():
        code = code.replace("../shared/", str(SHARED) + "/")
    # A fresh interpreter, as a reader would run it (it must not depend on test fixtures).
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ))
    assert r.returncode == 0, r.stderr


def test_docstring_examples_run(monkeypatch):
    """The examples in the package's and carve.load's docstrings (paths relative to the repository)."""
    import doctest

    import carve

    monkeypatch.chdir(REPO)
    if SHARED.resolve() != (REPO.parent / "shared").resolve():
        pytest.skip("the docstring examples use ../shared")
    for obj, name in ((carve, "carve"), (carve.load, "carve.load")):
        finder = doctest.DocTestFinder(recurse=False)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
        tests = finder.find(obj, name, globs={"carve": carve})
        assert tests and tests[0].examples, f"{name} has no docstring example"
        for t in tests:
            runner.run(t)
        assert runner.failures == 0, f"{name}: {runner.failures} docstring examples failed"
