#!/usr/bin/env python3
"""The README's "First delivery" does what it says (ctest docs.readme_first_delivery).

    tests/readme_first_delivery_check.py REPO_ROOT HOOKVAULT_BINARY

Takes the first ```sh block of README.md's "## First delivery" section and the ```text block
after it (what the sh block prints). In a temporary folder laid out like the repository after
`scripts/dev` (var/dev from `hookvault init`, build/hookvault the binary under test), it starts
`hookvault serve` on var/dev/hookvault.toml with both listeners moved to port 0, runs the sh
block with bash (-e -u -o pipefail) with the README's 127.0.0.1:8443 replaced by the port the
daemon bound, and compares its output with the text block line by line ("..." in the text block
stands for any text: a time, say). Exit 1 naming the first difference, with the daemon's log.
"""
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time

SECTION = "## First delivery"
README_ADDRESS = "127.0.0.1:8443"


def blocks(readme):
    """The section's first sh block and the text block after it."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start:end if end != -1 else len(readme)]
    sh = re.search(r"^```sh\n(.*?)^```$", section, re.S | re.M)
    if not sh:
        raise SystemExit(f"README.md: no ```sh block in {SECTION!r}")
    text = re.search(r"^```text\n(.*?)^```$", section[sh.end():], re.S | re.M)
    if not text:
        raise SystemExit(f"README.md: no ```text block after the sh block in {SECTION!r}")
    return sh.group(1), text.group(1)


def matches(want, got):
    """`got` is the README's line `want`, where "..." in `want` is any text."""
    return re.fullmatch(".*".join(re.escape(part) for part in want.split("...")), got) is not None


def public_port(log_path, serve, deadline):
    """The port of the public listener, from the daemon's "listening" log line."""
    pattern = re.compile(r"listening listener=public .*?port=(\d+)")  # [log] format = "text"
    while time.monotonic() < deadline:
        match = pattern.search(log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        if serve.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def main():
    root = pathlib.Path(sys.argv[1])
    binary = pathlib.Path(sys.argv[2]).resolve()
    script, expected = blocks((root / "README.md").read_text())
    with tempfile.TemporaryDirectory(prefix="hookvault-readme-") as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "build").mkdir()
        (tmp / "build" / "hookvault").symlink_to(binary)
        subprocess.run([str(binary), "init", "--dir", "var/dev"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        config = tmp / "var/dev/hookvault.toml"
        text = config.read_text()
        for port in ("8443", "9443"):
            if f'listen = "127.0.0.1:{port}"' not in text:
                raise SystemExit(f"hookvault init's config no longer listens on 127.0.0.1:{port}")
            text = text.replace(f'listen = "127.0.0.1:{port}"', 'listen = "127.0.0.1:0"')
        config.write_text(text)
        log_path = tmp / "serve.log"
        with open(log_path, "w") as log:
            serve = subprocess.Popen([str(binary), "serve", "--config", str(config)], cwd=tmp,
                                     stdout=log, stderr=subprocess.STDOUT)
        try:
            port = public_port(log_path, serve, time.monotonic() + 30)
            if port is None:
                print(log_path.read_text(errors="replace"))
                raise SystemExit("hookvault serve did not start listening")
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script.replace(README_ADDRESS,
                                                                  f"127.0.0.1:{port}")],
                cwd=tmp, capture_output=True, text=True, timeout=60,
                env={**os.environ, "LC_ALL": "C"})
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
        got = run.stdout.splitlines()
        want = expected.splitlines()
        problem = None
        if run.returncode != 0:
            problem = f"the block exited {run.returncode}: {run.stderr.strip()}"
        else:
            for i in range(max(len(got), len(want))):
                g = got[i] if i < len(got) else "<nothing>"
                w = want[i] if i < len(want) else "<nothing>"
                if not matches(w, g):
                    problem = f"line {i + 1} of its output:\n  README: {w}\n  got:    {g}"
                    break
        if problem:
            print("daemon log:\n" + log_path.read_text(errors="replace"))
            print("output:\n" + run.stdout + run.stderr)
            print(f"README.md, {SECTION!r}: {problem}")
            return 1
    print(f"ok: README.md {SECTION!r}, {len(want)} lines as printed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
