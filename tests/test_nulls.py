"""The null audit's stand-ins (autograder/nulls.py): what a trivial submission returns."""
from __future__ import annotations

import numpy as np
import pytest

from autograder.assignment import load_assignment
from autograder.nulls import HELPERS, contract_names, stand_in


def stand_in_of(kind: str):
    namespace: dict = {}
    exec(HELPERS, namespace)  # noqa: S102 - the audit's own code
    exec("import numpy as np\ndef f(x, w):\n    return x @ w, {'x': x, 'n': 3}", namespace)
    exec(stand_in("f", kind), namespace)
    return namespace["f"]


def test_zeros_and_ones_keep_the_reference_output_structure():
    x, w = np.ones((2, 3)), np.full((3, 4), 2.0)
    out, cache = stand_in_of("zeros")(x, w)
    assert out.shape == (2, 4) and not out.any() and cache["n"] == 0 and not cache["x"].any()
    out, cache = stand_in_of("ones")(x, w)
    assert (out == 1).all() and cache["n"] == 1
    assert x.sum() == 6  # the input itself is untouched


def test_input_constant_and_not_implemented():
    x = np.ones((2, 3))
    assert stand_in_of("input")(x, None) is x
    assert stand_in_of("constant")(x, None) == 1.0
    with pytest.raises(NotImplementedError):
        stand_in_of("not_implemented")(x, None)


def test_the_contract_is_what_the_skeleton_leaves_to_the_student():
    functions, classes = contract_names(load_assignment("hw1_backprop").skeleton)
    assert {"affine_forward", "affine_backward", "softmax_loss", "adam"} <= set(functions)
    assert classes == ["FullyConnectedNet"]
    assert "check" not in functions  # given helpers raise nothing


def test_the_audit_finds_covers_names_the_notebook_does_not_define():
    from types import SimpleNamespace

    from autograder.audit import undefined_covers

    assignment = load_assignment("hw1_backprop")
    run = SimpleNamespace(outcomes=[SimpleNamespace(tags=["affine_forward"]),
                                    SimpleNamespace(tags=["FullyConnectedNet", "adamw"])])
    assert undefined_covers(assignment, run) == ["adamw"]


def test_a_mistake_cascades_only_outside_its_own_and_integration_tests():
    from types import SimpleNamespace

    from autograder.audit import cascade_of

    def test(name, score, max_score):
        return SimpleNamespace(name=name, score=score, max_score=max_score)

    def outcome(tags, integration=False):
        return SimpleNamespace(tags=tags, integration=integration)

    run = SimpleNamespace(
        results=SimpleNamespace(tests=[test("own", 0, 3), test("composite", 1, 4),
                                       test("trained", 0, 10), test("other", 2, 2)]),
        outcomes=[outcome(["neg_elbo"]), outcome(["train_vae"]),
                  outcome(["VAE"], integration=True), outcome(["encode"])])
    assert cascade_of("neg_elbo", run) == {"composite": 3}


def test_an_audit_report_reads_back_from_json():
    """`dlgrade audit --json`: what two audits are compared by (every mutant's score, failed
    tests and diagnosis, the null audit's scores) survives the trip."""
    import json

    from autograder.audit import AuditReport, MutantResult
    from autograder.nulls import NullResult

    report = AuditReport("hw", max_score=10, reference_score=10, skeleton_score=0,
                         mutants=[MutantResult("m", "f", 7.5, True, ["2"], diagnosed=True),
                                  MutantResult("n", "g", 10, False, [])],
                         nulls=[NullResult("f", "zeros", 0.0, [("t", 1.0)])])
    data = json.loads(report.to_json())
    assert [(m["name"], m["score"], m["failed_tests"], m["diagnosed"])
            for m in data["mutants"]] == [("m", 7.5, ["2"], True), ("n", 10, [], False)]
    assert data["nulls"] == [{"function": "f", "kind": "zeros", "score": 0.0,
                              "paid": [["t", 1.0]]}]
    assert data["kill_rate"] == 0.5 and data["diagnosis_rate"] == 1.0
