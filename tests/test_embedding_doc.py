"""The first Python example of docs/embedding.md runs as written."""

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "embedding.md"


def test_minimal_loop_example_runs():
    text = DOC.read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, str(DOC), "exec"), {})
