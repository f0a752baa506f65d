"""Compare two `dlgrade audit --json` reports, timings aside: exit 0 when every score, failed
test, diagnosis, null result, tolerance margin and metric is the same (a refactor of hidden
tests or engine changed no grade), 1 with the differences listed otherwise.

    python scripts/same_audit.py before.json after.json
"""
import json
import sys

TIMINGS = {"reference_seconds", "reference_peak_mb", "test_seconds"}


def differences(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            if key in TIMINGS:
                continue
            if key not in a or key not in b:
                found.append(f"{where}.{key}: only in {'after' if key in b else 'before'}")
            else:
                found += differences(a[key], b[key], f"{where}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} entries before, {len(b)} after"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} before, {b!r} after"]


if __name__ == "__main__":
    before, after = (json.load(open(path)) for path in sys.argv[1:3])
    found = differences(before, after)
    print("\n".join(found) if found else "same scores, failures, diagnoses and margins")
    sys.exit(1 if found else 0)
