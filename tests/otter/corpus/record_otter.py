"""Grades every submission of the otter corpus with otter-grader itself and records the scores.

    .venv/bin/python tests/otter/corpus/record_otter.py [--otter-venv .venv-otter] [masters ...]

For each master (``<name>/master/<name>.ipynb``): ``otter assign <name>.ipynb dist --no-pdfs``
on a copy of its folder, then ``otter run -a dist/autograder/*.zip -o OUT SUBMISSION`` for
every file in ``<name>/submissions/`` (notebooks and zips). otter's results.json gives, per
submission, ``{"questions": {question: score}, "score": total, "possible": sum of max_score}``:
``score`` is results.json's top-level ``score`` where otter writes one (with
``points_possible``), else the sum of the questions' scores. All of it goes to
``recorded.json`` beside this script (masters named on the command line are re-recorded, the
others kept), which tests/test_otter_corpus.py compares dlgrade with. A table is printed.

otter runs the notebooks in the python3 kernel of its own venv, so that venv needs what the
masters import: numpy and scipy (``.venv-otter/bin/pip install scipy``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RECORDED = HERE / "recorded.json"


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["nice", "-n", "10", *map(str, cmd)], capture_output=True, text=True,
                          **kwargs)


def scores_from(results: dict) -> dict:
    questions = {t["name"]: t["score"] for t in results["tests"]
                 if t.get("max_score") is not None}
    possible = sum(t["max_score"] for t in results["tests"] if t.get("max_score") is not None)
    score = results.get("score", sum(questions.values()))
    return {"questions": questions, "score": score, "possible": possible}


def record_master(name: str, otter: Path, env: dict) -> dict:
    master = HERE / name / "master" / f"{name}.ipynb"
    submissions = sorted((HERE / name / "submissions").iterdir())
    recorded = {}
    with tempfile.TemporaryDirectory(prefix=f"otter-record-{name}-") as tmp:
        work = Path(tmp)
        shutil.copytree(master.parent, work / "master")
        done = run([otter, "assign", master.name, "dist", "--no-pdfs"], cwd=work / "master",
                   env=env)
        if done.returncode != 0:
            sys.exit(f"otter assign {name} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        zip_path = next((work / "master" / "dist" / "autograder").glob("*.zip"))
        for sub in submissions:
            out = work / f"out-{sub.stem}-{sub.suffix[1:]}"
            out.mkdir()
            done = run([otter, "run", "-a", zip_path, "-o", out, "--no-logo", sub], cwd=work,
                       env=env)
            if done.returncode != 0 or not (out / "results.json").exists():
                sys.exit(f"otter run {name}/{sub.name} failed:\n{done.stdout[-3000:]}"
                         f"{done.stderr[-3000:]}")
            recorded[sub.name] = scores_from(json.loads((out / "results.json").read_text()))
    return recorded


def table(recorded: dict) -> str:
    questions = sorted({q for subs in recorded.values() for r in subs.values()
                        for q in r["questions"]})
    head = f"{'master':12} {'submission':20} " + " ".join(f"{q:>5}" for q in questions)
    lines = [head + f" {'score':>6} {'possible':>8}", "-" * (len(head) + 16)]
    for master, subs in recorded.items():
        for sub, r in subs.items():
            cells = " ".join(f"{r['questions'][q]:5g}" if q in r["questions"] else f"{'':5}"
                             for q in questions)
            lines.append(f"{master:12} {sub:20} {cells} {r['score']:6g} {r['possible']:8g}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--otter-venv", type=Path, default=ROOT / ".venv-otter")
    parser.add_argument("masters", nargs="*")
    args = parser.parse_args()
    venv = args.otter_venv.resolve()
    otter = venv / "bin" / "otter"
    if not otter.exists():
        sys.exit(f"no otter in {venv} (see bench/bench_otter.py)")
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}")
    masters = args.masters or sorted(p.parent.parent.name
                                     for p in HERE.glob("*/master/*.ipynb"))
    recorded = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
    for name in masters:
        print(f"recording {name} ...", flush=True)
        recorded[name] = record_master(name, otter, env)
    recorded = {m: recorded[m] for m in sorted(recorded)}
    RECORDED.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    print(table(recorded))
    return 0


if __name__ == "__main__":
    sys.exit(main())
