"""Writes the otter-format notebooks used by tests/test_otter_import.py (run it to rebuild them).

``hello_master.ipynb`` is an otter master notebook as an instructor would keep it after running
it in Jupyter (test cells carry their outputs, which otter takes as the expected output): two
questions, each with a public and a hidden test. ``hello_correct.ipynb`` and
``hello_wrong.ipynb`` are student notebooks written for otter (``grader.check`` cells included).
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import (new_code_cell, new_markdown_cell, new_notebook, new_output,
                         new_raw_cell)

HERE = Path(__file__).resolve().parent


def shown(source: str, text: str):
    """A test cell as Jupyter leaves it: the value of its last line displayed."""
    cell = new_code_cell(source)
    cell.outputs = [new_output("execute_result", data={"text/plain": text}, execution_count=1)]
    return cell


def printed(source: str, text: str):
    cell = new_code_cell(source)
    cell.outputs = [new_output("stream", name="stdout", text=text)]
    return cell


def notebook(cells, prefix):
    for n, cell in enumerate(cells):
        cell.id = f"{prefix}-{n:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


def master():
    return notebook([
        new_raw_cell("# ASSIGNMENT CONFIG\nname: hello_otter\nexport_cell: false\n"
                     "files:\n  - data.csv"),
        new_markdown_cell("# Hello, otter\n\nTwo small questions."),
        new_raw_cell("# BEGIN QUESTION\nname: q1\npoints: 3"),
        new_markdown_cell("**Question 1.** Write `square(x)`, elementwise for arrays too."),
        new_raw_cell("# BEGIN SOLUTION"),
        new_code_cell("def square(x):\n    # BEGIN SOLUTION\n    return x * x\n"
                      "    # END SOLUTION"),
        new_raw_cell("# END SOLUTION"),
        new_raw_cell("# BEGIN TESTS"),
        shown("square(3)", "9"),
        shown('""" # BEGIN TEST CONFIG\npoints: 2\nhidden: true\n'
              'failure_message: check negative inputs\n""" # END TEST CONFIG\n'
              "square(-4), square(0.5)", "(16, 0.25)"),
        new_raw_cell("# END TESTS"),
        new_raw_cell("# END QUESTION"),
        new_raw_cell("# BEGIN QUESTION\nname: q2\npoints: 2"),
        new_markdown_cell("**Question 2.** Set `mean_height` to the mean of `heights`."),
        new_code_cell("heights = [150, 165, 172, 181]"),
        new_raw_cell("# BEGIN SOLUTION"),
        new_code_cell("mean_height = sum(heights) / len(heights)  # SOLUTION\n"
                      "print(mean_height)"),
        new_raw_cell("# END SOLUTION"),
        new_raw_cell("# BEGIN TESTS"),
        printed("print(type(mean_height).__name__)", "float\n"),
        shown("# HIDDEN\nround(mean_height, 2)", "167.0"),
        new_raw_cell("# END TESTS"),
        new_raw_cell("# END QUESTION"),
    ], "master")


def student(square_body: str, mean_line: str, prefix: str):
    """A student notebook as otter hands it out, answers filled in, check cells kept."""
    nb = notebook([
        new_code_cell("# Initialize Otter\nimport otter\ngrader = otter.Notebook("
                      '"hello_otter.ipynb")'),
        new_code_cell(f"def square(x):\n    {square_body}"),
        new_code_cell('grader.check("q1")'),
        new_code_cell("heights = [150, 165, 172, 181]"),
        new_code_cell(f"{mean_line}\nprint(mean_height)"),
        new_code_cell('grader.check("q2")'),
        new_code_cell("grader.check_all()"),
        new_code_cell("grader.export(pdf=False, run_tests=True)"),
    ], prefix)
    nb.metadata["otter"] = {"assignment_name": "hello_otter"}  # otter checks it when grading
    return nb


def main():
    nbformat.write(master(), HERE / "hello_master.ipynb")
    nbformat.write(student("return x * x",
                           "mean_height = sum(heights) / len(heights)", "correct"),
                   HERE / "hello_correct.ipynb")
    # Right on both public cases, wrong on both hidden ones: x * |x| keeps the sign of a
    # negative input, and dividing by len + 1 still gives a float, of the wrong value.
    nbformat.write(student("return x * abs(x)",
                           "mean_height = sum(heights) / (len(heights) + 1)", "wrong"),
                   HERE / "hello_wrong.ipynb")


if __name__ == "__main__":
    main()
