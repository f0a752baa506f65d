"""Writes bench/otter/hw1_otter_master.ipynb: a subset of hw1 as an otter master notebook.

The solution cells are hw1's own (solutions/hw1_backprop.ipynb; its ``# BEGIN/END SOLUTION``
markers are otter's too). The tests are otter doctest-style cells with the inputs and the
1e-7 relative tolerance of dlgrade's hw1 checks; each shows ``True`` in the master, which is
what otter records as the expected output. Run it to rebuild the notebook.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TOL = "rtol=1e-7, atol=1e-12"  # hw1's VALUE_TOL, relative

# question -> (points, [(hidden, test source)])
TESTS = {
    "affine_forward": (4, [
        (False, "x = np.array([[[1.0, 2.0]], [[0.0, -1.0]]])\n"
                "w = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])\n"
                "b = np.array([0.5, -0.5, 0.0])\n"
                "out, _ = affine_forward(x, w, b)\n"
                "np.allclose(out, [[1.5, 1.5, 0.0], [0.5, -1.5, 1.0]])"),
        (True, "rng = np.random.default_rng(1)\n"
               "x, w, b = rng.standard_normal((4, 3, 2)), rng.standard_normal((6, 5)), "
               "rng.standard_normal(5)\n"
               "out, _ = affine_forward(x, w, b)\n"
               f"out.shape == (4, 5) and np.allclose(out, x.reshape(4, 6) @ w + b, {TOL})"),
    ]),
    "affine_backward": (5, [
        (True, "rng = np.random.default_rng(2)\n"
               "x, w, b = rng.standard_normal((4, 3, 2)), rng.standard_normal((6, 5)), "
               "rng.standard_normal(5)\n"
               "dout = rng.standard_normal((4, 5))\n"
               "dx, dw, db = affine_backward(dout, (x, w, b))\n"
               f"(np.allclose(dx, (dout @ w.T).reshape(x.shape), {TOL})\n"
               f" and np.allclose(dw, x.reshape(4, 6).T @ dout, {TOL})\n"
               f" and np.allclose(db, dout.sum(axis=0), {TOL}))"),
    ]),
    "relu_forward": (2, [
        (False, "out, _ = relu_forward(np.array([-1.0, 0.0, 2.0]))\n"
                "np.allclose(out, [0.0, 0.0, 2.0])"),
        (True, "x = np.random.default_rng(3).standard_normal((3, 4, 5))\n"
               "out, cache = relu_forward(x)\n"
               "out.shape == x.shape and np.allclose(out, np.maximum(x, 0))"),
    ]),
    "relu_backward": (2, [
        (True, "rng = np.random.default_rng(4)\n"
               "x, dout = rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4, 5))\n"
               "np.allclose(relu_backward(dout, x), dout * (x > 0))"),
    ]),
    "softmax_loss": (6, [
        (False, "loss, dx = softmax_loss(np.zeros((3, 4)), np.array([0, 1, 2]))\n"
                "bool(np.isclose(loss, np.log(4)) and np.allclose(dx.sum(axis=1), 0))"),
        (True, "rng = np.random.default_rng(5)\n"
               "x, y = rng.standard_normal((7, 5)), rng.permutation(np.arange(7) % 5)\n"
               "loss, dx = softmax_loss(x, y)\n"
               "p = np.exp(x - x.max(axis=1, keepdims=True))\n"
               "p /= p.sum(axis=1, keepdims=True)\n"
               "ref_dx = p.copy()\n"
               "ref_dx[np.arange(7), y] -= 1\n"
               f"bool(np.isclose(loss, -np.log(p[np.arange(7), y]).mean(), {TOL})\n"
               f"     and np.allclose(dx, ref_dx / 7, {TOL}))"),
        (True, "x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]])\n"
               "loss, dx = softmax_loss(x, np.array([0, 2]))\n"
               "bool(np.isfinite(loss) and np.all(np.isfinite(dx))\n"
               f"     and np.isclose(loss, 0.5 * (1 + np.log1p(np.exp(-1))), {TOL}))"),
    ]),
    "sgd_momentum": (2, [
        (True, "rng = np.random.default_rng(6)\n"
               "w, dw1, dw2 = (rng.standard_normal((4, 3)) for _ in range(3))\n"
               "w1, config = sgd_momentum(w, dw1, {'learning_rate': 0.1, 'momentum': 0.8})\n"
               "w2, config = sgd_momentum(w1, dw2, config)\n"
               "v1 = -0.1 * dw1\n"
               "v2 = 0.8 * v1 - 0.1 * dw2\n"
               f"(np.allclose(w1, w + v1, {TOL})\n"
               f" and np.allclose(w2, w + v1 + v2, {TOL}))"),
    ]),
    "adam": (3, [
        (True, "rng = np.random.default_rng(7)\n"
               "w, dw1, dw2 = (rng.standard_normal((4, 3)) for _ in range(3))\n"
               "w1, config = adam(w, dw1, {'learning_rate': 0.01})\n"
               "w2, config = adam(w1, dw2, config)\n"
               "m = 0.1 * (0.9 * dw1) + 0.1 * dw2\n"
               "v = 0.001 * (0.999 * dw1 ** 2) + 0.001 * dw2 ** 2\n"
               "step = 0.01 * (m / (1 - 0.9 ** 2)) / (np.sqrt(v / (1 - 0.999 ** 2)) + 1e-8)\n"
               f"config['t'] == 2 and np.allclose(w2, w1 - step, {TOL})"),
    ]),
}


def shown(source: str):
    cell = new_code_cell(source)
    cell.outputs = [new_output("execute_result", data={"text/plain": "True"},
                               execution_count=1)]
    return cell


def build():
    hw1 = nbformat.read(ROOT / "solutions" / "hw1_backprop.ipynb", as_version=4)
    solutions = {}
    for cell in hw1.cells:
        for name in TESTS:
            if cell.cell_type == "code" and cell.source.startswith(f"def {name}("):
                solutions[name] = cell.source
    cells = [new_raw_cell("# ASSIGNMENT CONFIG\nname: hw1_otter\nexport_cell: false\n"
                          "check_all_cell: false"),
             new_markdown_cell("# hw1, as an otter assignment\n\nA subset of hw1_backprop "
                               "with otter tests, for `bench/bench_otter.py`."),
             new_code_cell("import numpy as np")]
    for name, (points, tests) in TESTS.items():
        cells += [new_raw_cell(f"# BEGIN QUESTION\nname: {name}\npoints: {points}"),
                  new_markdown_cell(f"Write `{name}` (see hw1_backprop)."),
                  new_raw_cell("# BEGIN SOLUTION"), new_code_cell(solutions[name]),
                  new_raw_cell("# END SOLUTION"), new_raw_cell("# BEGIN TESTS")]
        cells += [shown(("# HIDDEN\n" if hidden else "") + source) for hidden, source in tests]
        cells += [new_raw_cell("# END TESTS"), new_raw_cell("# END QUESTION")]
    for n, cell in enumerate(cells):
        cell.id = f"hw1-otter-{n:02d}"
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nb


if __name__ == "__main__":
    nbformat.write(build(), HERE / "hw1_otter_master.ipynb")
    print(f"wrote {HERE / 'hw1_otter_master.ipynb'}")
