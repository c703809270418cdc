#!/usr/bin/env python3
"""Every test a document cites exists (ctest docs.cited_tests).

    tests/doc_tests_check.py REPO_ROOT DOC...

A citation is a backticked `Suite.Name` or `Suite.*` (a GoogleTest test or suite) or
`fuzz_<target>` (a fuzz target). `Suite.Name` must be defined by TEST, TEST_F or TEST_P in a
file under tests/, `Suite.*` must name a suite with at least one test there, and
`fuzz_<target>` must have tests/fuzz/fuzz_<target>.cpp. Exits 1 naming every citation that
does not resolve, so a renamed or deleted test cannot leave a document claiming it.

`--self-test REPO_ROOT` checks that an invented test, an invented suite and an invented fuzz
target are each reported, and that real ones are not.
"""
import pathlib
import re
import sys

CITATION = re.compile(r"`((?:[A-Z][A-Za-z0-9]*)\.(?:\*|[A-Z][A-Za-z0-9_]*)|fuzz_[a-z_]+)`")
DEFINITION = re.compile(r"^\s*TEST(?:_F|_P)?\(\s*([A-Za-z0-9_]+)\s*,\s*([A-Za-z0-9_]+)\s*\)", re.M)


def defined_tests(root):
    tests = set()
    for path in (root / "tests").rglob("*.cpp"):
        tests.update(DEFINITION.findall(path.read_text(errors="replace")))
    return tests


def unresolved(root, text, tests):
    suites = {suite for suite, _ in tests}
    missing = []
    for citation in CITATION.findall(text):
        if citation.startswith("fuzz_"):
            ok = (root / "tests" / "fuzz" / (citation + ".cpp")).is_file()
        else:
            suite, name = citation.split(".", 1)
            ok = suite in suites if name == "*" else (suite, name) in tests
        if not ok:
            missing.append(citation)
    return missing


def check(root, docs):
    tests = defined_tests(root)
    problems = []
    for doc in docs:
        text = (root / doc).read_text()
        if not CITATION.search(text):
            problems.append(f"{doc}: cites no test at all (is the pattern still right?)")
        problems += [f"{doc}: `{c}` is not a test here" for c in unresolved(root, text, tests)]
    return problems


def self_test(root):
    tests = defined_tests(root)
    real_suite, real_name = sorted(tests)[0]
    cases = {
        f"`{real_suite}.{real_name}`, `{real_suite}.*`, `fuzz_json`": [],
        f"`{real_suite}.NoSuchTestAnywhere`": [f"{real_suite}.NoSuchTestAnywhere"],
        "`NoSuchSuite.*`": ["NoSuchSuite.*"],
        "`fuzz_no_such_target`": ["fuzz_no_such_target"],
    }
    failures = [
        f"{text!r}: expected {want}, got {got}"
        for text, want in cases.items()
        if (got := unresolved(root, text, tests)) != want
    ]
    for f in failures:
        print("self-test:", f)
    return 1 if failures else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--self-test":
        return self_test(pathlib.Path(argv[2]))
    if len(argv) < 3:
        print(__doc__)
        return 2
    problems = check(pathlib.Path(argv[1]), argv[2:])
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
