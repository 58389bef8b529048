"""Exit 1 when a JUnit XML file reports an error (a check that could not run), naming each one.

The nightly lets pytest's exit code 1 (failed checks: graded by the report, and a regression fails the
report job) through, but not an error: ``python tools/junit_errors.py junit/*.xml``.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def errors(paths: list[str]) -> list[str]:
    """``path: test id: message`` for every <error> in the files."""
    found = []
    for path in paths:
        for case in ET.parse(path).getroot().iter("testcase"):
            for error in case.findall("error"):
                found.append(f"{path}: {case.get('classname')}::{case.get('name')}: {error.get('message', '')[:300]}")
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python tools/junit_errors.py JUNIT.xml [...]", file=sys.stderr)
        return 2
    found = errors(argv)
    for line in found:
        print(line)
    print(f"{len(found)} error(s) in {len(argv)} JUnit file(s)", file=sys.stderr if found else sys.stdout)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
