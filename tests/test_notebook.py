"""Reading notebooks: bad files get clear messages; IPython syntax never breaks grading."""
import json

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from autograder.notebook import NotebookError, extract_code, neutralise_ipython, read_notebook
from conftest import make_notebook


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"{not json", "not valid notebook JSON"),
    (b"import numpy as np\n", "looks like a Python script"),
    (b"%PDF-1.7 ...", "is a PDF"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"[]", "not a notebook"),
    (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "not a valid notebook"),
])
def test_bad_files_have_clear_messages(tmp_path, content, message):
    path = tmp_path / "sub.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError, match=message):
        read_notebook(path)


def test_v3_notebooks_are_converted(tmp_path):
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": [
        {"cell_type": "code", "input": "def f():\n    return 1", "language": "python",
         "outputs": [], "metadata": {}}]}]}
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(v3))
    code = extract_code(read_notebook(path))
    assert code.cells[0][0] == 1 and code.cells[0][1].strip() == "def f():\n    return 1"


def test_outputs_are_dropped(tmp_path):
    nb = make_notebook("x = 1")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="y" * 1000)]
    path = tmp_path / "out.ipynb"
    nbformat.write(nb, path)
    assert read_notebook(path).cells[0].outputs == []


@pytest.mark.parametrize("source, survives", [
    ("%matplotlib inline\ndef f():\n    return 1", "def f():"),
    ("!pip install torch\ndef f():\n    return 1", "def f():"),
    ("%%time\ndef f():\n    return 1", "def f():"),
    ("f?\ndef g():\n    return 2", "def g():"),
])
def test_ipython_syntax_is_neutralised(source, survives):
    notes = []
    code = neutralise_ipython(source, TransformerManager(), 1, notes)
    compile(code, "cell", "exec")  # plain Python now
    assert survives in code
    assert "pip install" not in code.replace("get_ipython().system('pip install torch')", "")


def test_non_python_cell_magics_are_skipped_with_a_note():
    notes = []
    assert neutralise_ipython("%%bash\nrm -rf /", TransformerManager(), 4, notes) is None
    assert notes == ["cell 4: %%bash cell is not Python; not run"]
