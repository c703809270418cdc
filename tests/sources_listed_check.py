#!/usr/bin/env python3
"""Every .cpp under src/, tests/unit, tests/integration, tests/support and tests/pg is in a
target's source list.

usage: sources_listed_check.py SOURCE_DIR LISTED_FILE
LISTED_FILE holds the sources CMakeLists.txt lists (hookvault_library and the
executable), one per line, relative to SOURCE_DIR. Outside a git checkout every
.cpp under src/ counts. Exit 1 naming each file that no target lists.
"""
import pathlib
import subprocess
import sys

DIRS = ["src", "tests/unit", "tests/integration", "tests/support", "tests/pg"]
PATTERNS = [d + "/*.cpp" for d in DIRS]


def main() -> int:
    root = pathlib.Path(sys.argv[1])
    listed = {line.strip() for line in pathlib.Path(sys.argv[2]).read_text().splitlines()
              if line.strip()}
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard",
                              *PATTERNS],
                             check=True, capture_output=True, text=True).stdout
        present = {line for line in out.splitlines() if line}
    except (OSError, subprocess.CalledProcessError):
        present = {str(p.relative_to(root)) for d in DIRS for p in (root / d).rglob("*.cpp")}
    missing = sorted(present - listed)
    gone = sorted(f for f in listed if not (root / f).is_file())
    for f in missing:
        print(f"{f}: in no target's source list (CMakeLists.txt, tests/CMakeLists.txt)")
    for f in gone:
        print(f"{f}: listed in CMakeLists.txt but not in the tree")
    if missing or gone:
        return 1
    print(f"ok: {len(present)} sources, each in a target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
