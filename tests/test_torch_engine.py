"""The engine's torch path: models stay in the worker, trusted objects are built beside them,
and ``--device`` reaches the tests (falling back to the CPU, with a note, where no GPU is)."""
from __future__ import annotations

import textwrap

import nbformat
import pytest

from autograder.assignment import load_assignment
from autograder.grade import cuda_available, grade_notebook

from conftest import make_notebook

MODEL_CELL = textwrap.dedent("""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)

    def backprop(model, x):
        loss = model.layer(x).pow(2).sum()
        loss.backward()
        return loss.item()
""")

HIDDEN_TESTS = textwrap.dedent('''
    import numpy as np
    import pytest
    import torch


    @pytest.mark.points(1)
    def test_optimizer_steps_the_student_model_not_its_copy(student, make, device):
        """trusted optimizer and copy built in the worker"""
        model = student.Net()
        model.to(device)
        copy = make("copy.deepcopy", model)
        optimizer = make("torch.optim.SGD", model.parameters(), lr=0.5)
        student.backprop(model, torch.ones(3, 4, device=device))
        optimizer.step()
        moved, kept = model.state_dict(), copy.state_dict()
        assert set(moved) == {"layer.weight", "layer.bias"}
        assert moved["layer.weight"].array.shape == (2, 4)
        assert not np.allclose(moved["layer.weight"].array, kept["layer.weight"].array)


    @pytest.mark.points(1)
    def test_mixture_sampler_is_seeded_by_its_generator(make):
        """the assignment's own trusted object (worker_objects.py), built in the worker"""
        centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0]], dtype=torch.float64)
        sampler = make("mixture_sampler", centers, 0.1)
        draws = []
        for _ in range(2):
            generator = make("torch.Generator")
            generator.manual_seed(7)
            draws.append(sampler(500, generator).array)
        assert draws[0].shape == (500, 2)
        np.testing.assert_array_equal(draws[0], draws[1])
        assert np.all(np.abs(np.abs(draws[0][:, 0]) - 2) < 0.6)
        assert 100 < np.sum(draws[0][:, 0] > 0) < 400


    @pytest.mark.points(1)
    def test_unknown_factories_are_refused(make):
        """only allow-listed factories"""
        with pytest.raises(Exception, match="no trusted factory named 'os.system'"):
            make("os.system", "true")
        with pytest.raises(Exception, match="no trusted factory named '_private_helper'"):
            make("_private_helper")


    @pytest.mark.points(1)
    def test_device_fixture(device):
        """the device fixture"""
        assert device == ("cuda" if torch.cuda.is_available() else "cpu")
''')


# The assignment's worker_objects.py: what its tests may build with make(), besides the engine's.
WORKER_OBJECTS = textwrap.dedent("""
    import torch


    def mixture_sampler(centers, std):
        def sample(batch_size, generator=None):
            which = torch.randint(len(centers), (batch_size,), generator=generator)
            noise = torch.randn(batch_size, centers.shape[1], generator=generator,
                                dtype=centers.dtype)
            return centers[which] + std * noise
        return sample


    def _private_helper():
        return "not exposed: the name starts with an underscore"
""")


@pytest.fixture(scope="module")
def torch_assignment(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch_engine")
    (root / "worker_objects.py").write_text(WORKER_OBJECTS)
    (root / "tests").mkdir()
    (root / "tests" / "test_engine.py").write_text(HIDDEN_TESTS)
    nbformat.write(make_notebook(MODEL_CELL), root / "master.ipynb")
    (root / "assignment.toml").write_text(textwrap.dedent("""
        title = "torch engine"
        master = "master.ipynb"
        forbidden_imports = []
        time_limit = 60
        load_time_limit = 60
        [limits]
        memory_mb = 3072
    """))
    return load_assignment(str(root))


def test_trusted_objects_and_device_reach_the_tests(torch_assignment):
    run = grade_notebook(torch_assignment.master, torch_assignment)
    failed = {t.name: t.output for t in run.results.tests if t.status != "passed"}
    assert not failed
    assert run.results.score == 4


@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU: nothing to fall back from")
def test_cuda_without_a_gpu_grades_on_cpu_and_says_so(torch_assignment):
    run = grade_notebook(torch_assignment.master, torch_assignment, device="cuda")
    assert run.results.score == 4
    assert "no usable CUDA GPU: graded on the CPU instead" in run.results.output


def test_a_broken_worker_objects_file_is_the_instructors_error(torch_assignment, tmp_path):
    """worker_objects.py is the instructor's code: where it fails in the worker, grading stops
    with a grader error naming the file (and a results file), never a student's zero."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(torch_assignment.directory, broken)
    (broken / "worker_objects.py").write_text("import torch\nraise RuntimeError('oops')\n")
    assignment = load_assignment(str(broken))
    run = grade_notebook(assignment.master, assignment)
    assert run.grader_error and run.results.tests == []
    assert "worker_objects.py fails in the worker: RuntimeError: oops" in run.results.output


def test_in_process_session_explains_errors_like_a_worker_session():
    """The in-process session (audits, baselines) has every attribute a worker session has:
    an error mentioning CUDA gets the same hint instead of an AttributeError."""
    import types

    from autograder.in_process import in_process_session
    from autograder.student_errors import StudentCodeError

    module = types.ModuleType("trusted")
    exec("def f():\n    raise RuntimeError('Found no NVIDIA driver: CUDA unavailable')\n",
         module.__dict__)
    session = in_process_session(module)
    with pytest.raises(StudentCodeError) as raised:
        session.request("call", {"target": {"name": "f"}, "args": [], "kwargs": {}}, "f()")
    assert "graded on a machine without a GPU" in raised.value.hint
