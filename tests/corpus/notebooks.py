"""Building the corpus's notebooks: the target's master, and variants of it.

The master of the corpus target (``tiny/master.ipynb``) is written from ``MASTER`` below
(``python tests/corpus/notebooks.py``; a test keeps the two in sync). A case is the master
with some cells replaced, removed or added, or a file that is not a notebook at all.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
TINY = HERE / "tiny"
MASTER_PATH = TINY / "master.ipynb"

INTRO = "# Corpus target\n\nThree functions of hw1's contract, for the grader's own tests."
# name -> source, in notebook order; the keys name the cells when building variants.
MASTER = {
    "imports": "import numpy as np",
    "affine_forward": '''def affine_forward(x, w, b):
    """out = x flattened to (N, D) @ w + b; cache = (x, w, b)."""
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)''',
    "relu_forward": '''def relu_forward(x):
    """out = max(0, x) elementwise; cache = x."""
    return np.maximum(0, x), x''',
    "softmax_loss": '''def softmax_loss(x, y):
    """Mean softmax cross-entropy of scores x (N, C) for labels y (N,), and its gradient."""
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(x.shape[0]), y].mean()
    dx = np.exp(log_probs)
    dx[np.arange(x.shape[0]), y] -= 1
    return loss, dx / x.shape[0]''',
}
FULL_MARKS = 8.0
POINTS = {"affine_forward": 3.0, "relu_forward": 2.0, "softmax_loss": 3.0}
# The test names (first docstring line of each hidden test), keyed by the function they grade.
TEST_NAMES = {"affine_forward": "affine_forward: output values",
              "relu_forward": "relu_forward: output values",
              "softmax_loss": "softmax_loss: loss and dx"}


def master_notebook() -> nbformat.NotebookNode:
    return variant()


def variant(*, extra: tuple[str, ...] = (), markdown: str = INTRO, **cells: str | None
            ) -> nbformat.NotebookNode:
    """The master with ``name=source`` cells replaced (None removes one), then ``extra`` cells.

    Cell ids are fixed, so the same variant is the same file byte for byte.
    """
    unknown = set(cells) - set(MASTER)
    if unknown:
        raise KeyError(f"no master cell named {sorted(unknown)}")
    sources = [src for name, src in {**MASTER, **cells}.items() if src is not None]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    nb.cells += [nbformat.v4.new_code_cell(src) for src in [*sources, *extra]]
    for number, cell in enumerate(nb.cells):
        cell.id = f"corpus-{number:02d}"
    return nb


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


def as_dict(nb: nbformat.NotebookNode) -> dict:
    """A plain JSON tree, for cases that break the format on purpose."""
    return json.loads(nbformat.writes(nb))


def replace_function(name: str, body: str, *, imports: str = "") -> nbformat.NotebookNode:
    """The master with function ``name`` rewritten: ``body`` is its indented body."""
    signature = MASTER[name].splitlines()[0]
    return variant(**{name: f"{imports}{signature}\n{body}"})


def write_with_images(nb: nbformat.NotebookNode, path: Path, megabytes: int) -> Path:
    """``nb`` with ``megabytes`` MB of PNG outputs in its last code cell, written in pieces:
    the file is never held in memory, here or (the point of the case) by the grader."""
    tree = as_dict(nb)
    last = max(i for i, c in enumerate(tree["cells"]) if c["cell_type"] == "code")
    tree["cells"][last]["outputs"] = ["@IMAGES@"]
    head, tail = json.dumps(tree).split('"@IMAGES@"')
    image = "iVBORw0KGgoAAAANSUhEUg" + "A" * ((1 << 20) - 22)  # base64 text, as Jupyter stores
    output = json.dumps({"output_type": "display_data", "metadata": {},
                         "data": {"image/png": image, "text/plain": ["<Figure>"]}})
    with open(path, "w") as fh:
        fh.write(head)
        for i in range(megabytes):
            fh.write(("," if i else "") + output)
        fh.write(tail)
    return path


if __name__ == "__main__":
    write(master_notebook(), MASTER_PATH)
    print(f"wrote {MASTER_PATH}")
