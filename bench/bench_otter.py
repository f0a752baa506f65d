"""otter-grader vs dlgrade on the same notebooks, timed in the same run.

    python bench/bench_otter.py [--reps 2]

What is compared: ``bench/otter/hw1_otter_master.ipynb``, a subset of hw1 written as an otter
master notebook (affine_forward/backward, relu_forward/backward, softmax_loss incl. logits of
+-1000, sgd_momentum and adam over two steps; 7 questions, 11 test cases, hw1's inputs and
1e-7 relative tolerance). ``otter assign`` builds otter's autograder from it and
``dlgrade import-otter`` builds a dlgrade assignment from the same file. Two submissions, the
filled-in student notebook otter produces (``grader.check`` cells included) and a buggy copy
(softmax without the max shift, adam without bias correction), are graded by ``otter run``
(otter's local, non-container mode: it runs the notebook in a Jupyter kernel) and by
``dlgrade grade``, each as a fresh command, alternately. The per-question scores must agree.

otter is installed only here, in ``.venv-otter`` (created on first use with pip; never in
``.venv``), with ipykernel, which ``otter run`` needs to execute notebooks.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MASTER = ROOT / "bench" / "otter" / "hw1_otter_master.ipynb"
OTTER_VENV = ROOT / ".venv-otter"
# The dlgrade of the venv running this script (make's .venv/bin/python), else the repo's .venv.
DLGRADE = next((p for p in (Path(sys.executable).parent / "dlgrade",
                            ROOT / ".venv" / "bin" / "dlgrade") if p.exists()),
               ROOT / ".venv" / "bin" / "dlgrade")

# The buggy submission: two classic mistakes, each caught by one hidden case.
BUGS = [
    ("shifted = x - x.max(axis=1, keepdims=True)", "shifted = x"),
    ('m_hat = config["m"] / (1 - beta1 ** config["t"])', 'm_hat = config["m"]'),
]


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)


def ensure_otter(venv: Path) -> float:
    """Create the otter venv on first use; returns the seconds it took (0 when it existed)."""
    if (venv / "bin" / "otter").exists():
        return 0.0
    start = time.monotonic()
    print(f"creating {venv} with otter-grader (first run only) ...", flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    done = run([base, "-m", "venv", venv])
    if done.returncode == 0:
        done = run([venv / "bin" / "pip", "install", "-q", "otter-grader", "ipykernel"])
    if done.returncode != 0:
        sys.exit(f"could not install otter-grader into {venv}:\n{done.stderr[-3000:]}")
    return time.monotonic() - start


def otter_scores(results: Path) -> dict[str, float]:
    data = json.loads(results.read_text())
    return {t["name"]: t["score"] for t in data["tests"] if t.get("max_score") is not None}


def dlgrade_scores(results: Path) -> dict[str, float]:
    scores: dict[str, float] = {}
    for t in json.loads(results.read_text())["tests"]:
        question = t["tags"][0]  # the covers() marker: the otter question's name
        scores[question] = scores.get(question, 0.0) + t["score"]
    return scores


def timed(cmd, cwd=None, env=None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    done = run(cmd, cwd=cwd, env=env)
    return time.monotonic() - start, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1, help="gradings per grader and notebook")
    parser.add_argument("--otter-venv", type=Path, default=OTTER_VENV)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    total_start = time.monotonic()
    setup_s = ensure_otter(args.otter_venv)
    otter = args.otter_venv / "bin" / "otter"
    # otter runs the notebook in the python3 kernel of its own venv.
    otter_env = dict(os.environ, PATH=f"{args.otter_venv / 'bin'}:{os.environ['PATH']}")
    work = Path(tempfile.mkdtemp(prefix="dlgrade-bench-otter-"))
    try:
        shutil.copy(MASTER, work / MASTER.name)
        t_assign, done = timed([otter, "assign", MASTER.name, "dist", "--no-pdfs",
                                "--no-run-tests"], cwd=work, env=otter_env)
        if done.returncode != 0:
            sys.exit(f"otter assign failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        zip_path = next((work / "dist" / "autograder").glob("*.zip"))
        t_import, done = timed([DLGRADE, "import-otter", work / MASTER.name, "--out",
                                work / "hw1_otter"])
        if done.returncode != 0:
            sys.exit(f"dlgrade import-otter failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")

        correct = work / "correct.ipynb"
        shutil.copy(work / "dist" / "autograder" / MASTER.name, correct)
        text = correct.read_text()
        for old, new in BUGS:
            needle = json.dumps(old)[1:-1]
            if needle not in text:
                sys.exit(f"bug site not found in the otter notebook: {old}")
            text = text.replace(needle, json.dumps(new)[1:-1])
        buggy = work / "buggy.ipynb"
        buggy.write_text(text)

        times: dict[tuple[str, str], list[float]] = {}
        scores: dict[tuple[str, str], dict[str, float]] = {}
        for rep in range(args.reps):
            for sub in (correct, buggy):
                out = work / f"otter-{sub.stem}-{rep}"
                out.mkdir()
                seconds, done = timed([otter, "run", "-a", zip_path, "-o", out, "--no-logo",
                                       sub], cwd=work, env=otter_env)
                if done.returncode != 0:
                    sys.exit(f"otter run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
                times.setdefault(("otter", sub.stem), []).append(seconds)
                scores[("otter", sub.stem)] = otter_scores(out / "results.json")

                results = work / f"dlgrade-{sub.stem}-{rep}.json"
                seconds, done = timed([DLGRADE, "grade", sub, "--assignment", work / "hw1_otter",
                                       "--results", results, "--quiet"])
                if done.returncode != 0:
                    sys.exit(f"dlgrade grade failed:\n{done.stdout[-2000:]}"
                             f"{done.stderr[-2000:]}")
                times.setdefault(("dlgrade", sub.stem), []).append(seconds)
                scores[("dlgrade", sub.stem)] = dlgrade_scores(results)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    agree = True
    print(f"\n{'notebook':9} {'question':16} {'otter':>6} {'dlgrade':>8}")
    for sub in ("correct", "buggy"):
        o, d = scores[("otter", sub)], scores[("dlgrade", sub)]
        for q in sorted(set(o) | set(d)):
            same = abs(o.get(q, -1) - d.get(q, -1)) < 1e-6
            agree &= same
            print(f"{sub:9} {q:16} {o.get(q, float('nan')):6g} {d.get(q, float('nan')):8g}"
                  + ("" if same else "   <- differ"))
        print(f"{sub:9} {'total':16} {sum(o.values()):6g} {sum(d.values()):8g}")

    print(f"\nwall seconds per grading (median of {args.reps}, each a fresh command):")
    summary = {}
    for sub in ("correct", "buggy"):
        o = statistics.median(times[("otter", sub)])
        d = statistics.median(times[("dlgrade", sub)])
        summary[sub] = {"otter_run_s": round(o, 2), "dlgrade_grade_s": round(d, 2),
                        "ratio": round(o / d, 2)}
        print(f"  {sub:8} otter run {o:5.1f} s   dlgrade grade {d:5.1f} s   "
              f"otter / dlgrade = {o / d:.1f}x")
    print(f"one-off: otter assign {t_assign:.1f} s, dlgrade import-otter {t_import:.1f} s "
          f"(includes its self-check: grading the master and the student notebook)")
    if setup_s:
        print(f"setup: creating .venv-otter took {setup_s:.0f} s")
    print(f"whole benchmark: {time.monotonic() - total_start:.0f} s; "
          f"scores {'agree' if agree else 'DIFFER'}")
    if args.json:
        args.json.write_text(json.dumps({"timings": summary, "otter_assign_s": t_assign,
                                         "dlgrade_import_s": t_import, "scores_agree": agree,
                                         "venv_setup_s": setup_s}, indent=2))
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
