"""Contract = tests: the rules hidden tests enforce, beside the notebook sentence stating each.

A hidden test whose name says it checks a cross-cutting rule (arguments left unchanged,
stability at extreme inputs, any batch size) enforces that rule for every function it covers.
The student notebook must state the rule next to that function: in its code cell (docstring,
comments) or in the markdown just before it; the notebook's introduction counts too, as a rule
for every function. The audit lists each (function, rule, sentence) and fails on a rule that no
sentence states.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

# rule -> (what in a test's name shows it enforces the rule, what in a sentence states it)
RULES = {
    "read-only arguments": (
        re.compile(r"(inputs|arrays passed in|dw) (are |is )?(left )?unchanged|keep their inputs|"
                   r"leave their inputs", re.I),
        re.compile(r"read-only|do not modify|unmodified|leaves? (its|their) arguments", re.I)),
    "any batch size": (
        re.compile(r"any batch size", re.I),
        re.compile(r"any batch size|batch(es)? of one|N = 1\b", re.I)),
}
# "finite and correct for logits of +-1000": the sentence must name the same extreme.
STABILITY = re.compile(r"finite and (correct|right) for .*?(\+-|±)\s*(\d+)", re.I)


@dataclass
class RuleRow:
    function: str
    rule: str
    test: str
    sentence: str  # "" where the notebook states it nowhere near the function


def enforced_rules(name: str) -> list[tuple[str, re.Pattern]]:
    """(rule, pattern of a sentence stating it) for the rules a test's name says it checks."""
    found = [(rule, sentence) for rule, (in_test, sentence) in RULES.items()
             if in_test.search(name)]
    extreme = STABILITY.search(name)
    if extreme:
        bound = extreme.group(3)
        found.append((f"stable at +-{bound}",
                      re.compile(rf"(stable|finite).*{bound}|(\+-|±)\s*{bound}", re.I)))
    return found


def _contexts(skeleton: Path) -> tuple[dict[str, list[str]], list[str]]:
    """Per top-level function or class: the lines of its cell and of the markdown before it;
    and the lines of the notebook's first markdown cell (its introduction)."""
    nb = nbformat.read(skeleton, as_version=4)
    intro: list[str] = []
    contexts: dict[str, list[str]] = {}
    markdown: list[str] = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if not intro and not contexts:
                intro = cell.source.splitlines()
            else:
                markdown += cell.source.splitlines()
            continue
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            tree = ast.Module(body=[], type_ignores=[])
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                contexts[node.name] = markdown + cell.source.splitlines()
        markdown = []
    return contexts, intro


def rule_table(skeleton: Path, outcomes) -> list[RuleRow]:
    contexts, intro = _contexts(skeleton)
    rows: list[RuleRow] = []
    seen = set()
    for outcome in outcomes:
        for rule, sentence in enforced_rules(outcome.name):
            for function in outcome.tags:
                if (function, rule) in seen:
                    continue
                seen.add((function, rule))
                near = [line for line in contexts.get(function, []) if sentence.search(line)]
                general = [line for line in intro if sentence.search(line)]
                text = near[0] if near else (f"(introduction) {general[0]}" if general else "")
                rows.append(RuleRow(function, rule, outcome.name, text.strip()[:160]))
    return rows
