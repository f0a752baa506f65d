"""Contract = tests: a rule a hidden test enforces must be stated next to its function."""
from types import SimpleNamespace

import nbformat

from autograder.rules import enforced_rules, rule_table


def outcome(name, *functions):
    return SimpleNamespace(name=name, tags=list(functions))


def notebook(tmp_path, *cells):
    nb = nbformat.v4.new_notebook()
    for kind, source in cells:
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "md"
                        else nbformat.v4.new_code_cell(source))
    path = tmp_path / "student.ipynb"
    nbformat.write(nb, path)
    return path


def test_rules_are_read_from_test_names():
    assert [r for r, _ in enforced_rules("affine_forward: inputs are left unchanged")] == \
        ["read-only arguments"]
    assert [r for r, _ in enforced_rules("softmax_loss: finite and correct for logits of "
                                         "+-1000")] == ["stable at +-1000"]
    assert [r for r, _ in enforced_rules("neg_elbo: D log 2 for any batch size")] == \
        ["any batch size"]
    assert enforced_rules("clip_grad_norm: gradients below max_norm are unchanged") == []


def test_each_rule_is_found_beside_its_function_or_reported_missing(tmp_path):
    path = notebook(
        tmp_path,
        ("md", "# hw\nA course notebook."),
        ("md", "## Softmax\nYour loss must stay finite for logits of ±1000."),
        ("code", 'def softmax_loss(x, y):\n    """Arguments are read-only."""\n'),
        ("code", "def relu_forward(x):\n    raise NotImplementedError\n"))
    rows = rule_table(path, [
        outcome("softmax_loss: finite and correct for logits of +-1000", "softmax_loss"),
        outcome("layers: leave their inputs unchanged", "softmax_loss", "relu_forward"),
        outcome("softmax_loss: finite and correct for logits of +-50", "softmax_loss")])
    found = {(r.function, r.rule): r.sentence for r in rows}
    assert found[("softmax_loss", "stable at +-1000")] == \
        "Your loss must stay finite for logits of ±1000."
    assert found[("softmax_loss", "read-only arguments")] == '"""Arguments are read-only."""'
    assert found[("relu_forward", "read-only arguments")] == ""  # stated nowhere near it
    assert found[("softmax_loss", "stable at +-50")] == ""  # another extreme than the text's


def test_the_introduction_states_a_rule_for_every_function(tmp_path):
    path = notebook(tmp_path, ("md", "# hw\nEvery function leaves its arguments unmodified."),
                    ("code", "def relu_forward(x):\n    pass\n"))
    (row,) = rule_table(path, [outcome("relu: inputs are left unchanged", "relu_forward")])
    assert row.sentence.startswith("(introduction) Every function leaves its arguments")
