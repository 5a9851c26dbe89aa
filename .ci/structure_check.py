#!/usr/bin/env python3
"""Issue 21's structural rules, checked over src/ (run by `cargo test`: tests/it/structure.rs):
no function over 80 lines, no `let _ = write!/writeln!`, `Destination` variants named only in
src/sink/, `S3Options` only in src/sink/ and src/settings/, `.authenticate()` called once.
Exit 1 with one line per breach."""
import os
import re
import sys

LIMIT = 80
problems = []


def sources():
    for root, _, files in os.walk("src"):
        for f in sorted(files):
            if f.endswith(".rs"):
                p = os.path.join(root, f)
                yield p, open(p, encoding="utf-8").read().split("\n")


def code(line):
    """The line without string/char literals and // comments (good enough for brace counting)."""
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])'", "''", line)
    return line.split("//")[0]


FN = re.compile(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")
authenticate = []
for path, lines in sources():
    for i, line in enumerate(lines):
        m = FN.match(line)
        if m:
            depth, opened, j = 0, False, i
            while j < len(lines):
                c = code(lines[j])
                if not opened and ";" in c and "{" not in c:
                    break
                for ch in c:
                    if ch == "{":
                        depth, opened = depth + 1, True
                    elif ch == "}":
                        depth -= 1
                if opened and depth == 0:
                    break
                j += 1
            if opened and j - i + 1 > LIMIT:
                problems.append(f"{path}:{i + 1}: fn {m.group(6)} is {j - i + 1} lines (over {LIMIT})")
        c = code(line)
        if re.search(r"let\s+_\s*=\s*write(ln)?!", c):
            problems.append(f"{path}:{i + 1}: `let _ = write!` discards an output error")
        if not path.startswith("src/sink/") and re.search(r"Destination::(Local|S3)\b", c):
            problems.append(f"{path}:{i + 1}: `Destination` matched outside src/sink/")
        if not path.startswith(("src/sink/", "src/settings/")) and "S3Options" in c:
            problems.append(f"{path}:{i + 1}: `S3Options` outside src/sink/ and src/settings/")
        if ".authenticate()" in c:
            authenticate.append(f"{path}:{i + 1}")
if len(authenticate) > 1:
    problems.append("`.authenticate()` is called in more than one place: " + ", ".join(authenticate))
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
