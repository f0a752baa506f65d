"""Which top-level statements of a notebook ``definitions`` mode runs: imports, functions,
classes, simple constants, and every statement that binds a name they read (transitively).
Used by the worker (which parses student code) and by the grader for the reference; it runs
inside the worker too (copied beside worker.py), so it imports nothing of the ``autograder``
package."""
from __future__ import annotations

import ast

# -------------------------------------------------------------------------------------
# Loading a notebook's code
# -------------------------------------------------------------------------------------

_FORBIDDEN_NODES = (ast.Call, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
                    ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)


def _is_constant_expr(node) -> bool:
    """A value computed without calling anything: literals, names, arithmetic, lambdas."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Lambda):
            continue  # a lambda's body runs only when called
        if isinstance(n, _FORBIDDEN_NODES):
            return False
        stack.extend(ast.iter_child_nodes(n))
    return True


def _is_main_guard(node) -> bool:
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__")


def _keep_definition(stmt) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef)):
        return True
    if isinstance(stmt, ast.Assign):
        return _is_constant_expr(stmt.value)
    if isinstance(stmt, ast.AnnAssign):
        return stmt.value is None or _is_constant_expr(stmt.value)
    if isinstance(stmt, ast.Try):
        body = stmt.body + stmt.orelse + stmt.finalbody + [s for h in stmt.handlers for s in h.body]
        return all(_keep_definition(s) or isinstance(s, ast.Pass) for s in body)
    if isinstance(stmt, ast.If):
        if _is_main_guard(stmt) or not _is_constant_expr(stmt.test):
            return False
        return all(_keep_definition(s) or isinstance(s, ast.Pass) for s in stmt.body + stmt.orelse)
    return False


def _reachable(stmt):
    """A copy of ``stmt`` without the statements that follow a raise, return, break or
    continue in the same block: a skeleton's ``raise NotImplementedError`` followed by
    ``return loss, dx`` reads no global ``loss`` (which would pull in a training loop)."""
    import copy

    stmt = copy.deepcopy(stmt)
    ends = (ast.Raise, ast.Return, ast.Break, ast.Continue)
    for node in ast.walk(stmt):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                end = next((i for i, s in enumerate(block) if isinstance(s, ends)), None)
                if end is not None:
                    del block[end + 1:]
    return stmt


def _scope_names(stmt) -> tuple[set, set]:
    """The module-level names one top-level statement binds, and the module-level names it
    reads: at once, or later, from inside the functions and classes it defines (their free
    global names, not their locals)."""
    import symtable

    try:
        table = symtable.symtable(ast.unparse(_reachable(stmt)), "<statement>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set(), set()
    bound, used = set(), set()
    for sym in table.get_symbols():
        if sym.is_assigned() or sym.is_imported() or sym.is_namespace():
            bound.add(sym.get_name())
        if sym.is_referenced():
            used.add(sym.get_name())
    stack = list(table.get_children())
    while stack:
        scope = stack.pop()
        stack.extend(scope.get_children())
        for sym in scope.get_symbols():
            if not sym.is_global():
                continue
            if sym.is_referenced():
                used.add(sym.get_name())
            if sym.is_declared_global() and sym.is_assigned():
                bound.add(sym.get_name())
    return bound, used


def plan_definitions(cells) -> dict:
    """Which top-level statements ``definitions`` mode runs: every definition (imports,
    functions, classes, simple constants), and every other statement that binds a name
    the kept code reads (``device = torch.device(...)``, ``bce = nn.BCELoss()``), transitively,
    as the student's own kernel did. What nothing reads (training loops, plots, prints) is not
    run. Returns {cell: sorted positions in the cell's body} for cells that parse."""
    statements = []  # (cell, position, bound, used, kept)
    for index, source in cells:
        try:
            tree = compile(source, f"cell[{index}]", "exec", ast.PyCF_ONLY_AST)
        except (SyntaxError, ValueError, RecursionError, MemoryError, UnicodeError):
            continue
        for position, stmt in enumerate(tree.body):
            bound, used = _scope_names(stmt)
            runnable = not (isinstance(stmt, ast.If) and _is_main_guard(stmt))
            statements.append([index, position, bound, used, _keep_definition(stmt), runnable])
    needed = set()
    for entry in statements:
        if entry[4]:
            needed |= entry[3]
    grew = True
    while grew:
        grew = False
        for entry in statements:
            if not entry[4] and entry[5] and entry[2] & needed:
                entry[4] = True
                needed |= entry[3]
                grew = True
    plan: dict = {index: [] for index, _ in cells}
    for index, position, _bound, _used, kept, _runnable in statements:
        if kept:
            plan[index].append(position)
    return plan


def _assigned_names(stmt) -> list[str]:
    names = []
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
    return names
