#!/usr/bin/env python3
"""Runs jamba-opt on mutants of the lit tests' IR and reports crashes and hangs.

Every `// RUN: jamba-opt %s ...` line of the .mlir tests under test/ gives a
pass pipeline; every `// -----` chunk of that file is mutated (a dimension of
a shaped type changed or made dynamic, an integer attribute set to a boundary
value, an element type swapped, an operand or result type dropped) and run
through that pipeline. jamba-opt must refuse a mutant with an error or accept
it; it must not die of a signal, print an LLVM fatal error, or run past the
timeout. Each such mutant is written to OUT_DIR with the command that fails
on it, and the script exits 1.

    fuzz/mutate-ir.py [--jamba-opt build/bin/jamba-opt] [--mutants 20]
                      [--seed 1] [--timeout 30] [--out build-fuzz/ir-crashes]
                      [TEST.mlir ...]

The mutants come from a seeded generator: the same seed gives the same
mutants. What it finds goes into a lit test (a negative case next to the
verifier's or the pass's other diagnostics) with the fix.
"""

import argparse
import os
import random
import re
import shlex
import subprocess
import sys

FATAL_MARKERS = ("LLVM ERROR", "PLEASE submit a bug report", "Assertion",
                 "Stack dump", "UNREACHABLE")
ELEMENT_TYPES = ["f32", "bf16", "f16", "f64", "i8", "i32", "i64", "index"]
BOUNDARY_INTS = ["0", "1", "-1", "2", "3", "7", "17", "64", "4096",
                 "2147483647", "-2147483648", "9223372036854775807"]

SHAPED = re.compile(r"\b(tensor|memref|vector)<([^<>]*)>")
INT_ATTR = re.compile(r"(\b[a-z_]+\s*=\s*)(-?\d+)(\s*:\s*i\d+)?")


def pipelines(test_path):
    """The jamba-opt flags of each RUN line that reads %s."""
    flags = []
    runs, pending = [], ""
    with open(test_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*//\s*RUN:\s*(.*)", line)
            if not m:
                continue
            text = m.group(1).rstrip()
            if text.endswith("\\"):  # continued on the next RUN line
                pending += text[:-1] + " "
                continue
            runs.append(pending + text)
            pending = ""
    for run in runs:
        if "jamba-opt" not in run or "%s" not in run:
            continue
        cmd = run.split("|")[0]
        try:
            words = shlex.split(cmd.replace("%s", "INPUT"))
        except ValueError:
            continue
        if "jamba-opt" not in words:
            continue
        words = words[words.index("jamba-opt") + 1:]
        kept = [w for w in words
                if w not in ("INPUT", "-verify-diagnostics",
                             "--verify-diagnostics", "-split-input-file",
                             "--split-input-file")
                and not w.startswith("2>")]
        if kept not in flags:
            flags.append(kept)
    return flags


def chunks(test_path):
    with open(test_path, encoding="utf-8") as f:
        text = f.read()
    # Drop the expected diagnostics: a mutant's own are not checked.
    text = re.sub(r"//\s*expected-[a-z]+.*", "", text)
    return [c for c in re.split(r"^// -----\s*$", text, flags=re.M)
            if "func.func" in c or "module" in c]


def mutate(text, rng):
    """One random edit of the IR; None if the kind picked has no site."""
    kind = rng.randrange(5)
    if kind == 0:  # a dimension of a shaped type
        sites = [m for m in SHAPED.finditer(text)
                 if re.search(r"\d+x", m.group(2))]
        if not sites:
            return None
        m = rng.choice(sites)
        dims = m.group(2).split("x")
        idx = [i for i, d in enumerate(dims[:-1]) if d.isdigit()]
        if not idx:
            return None
        i = rng.choice(idx)
        dims[i] = rng.choice(["?", "0", "1", str(int(dims[i]) + 1),
                              str(max(1, int(dims[i]) // 2)), "3"])
        new = "%s<%s>" % (m.group(1), "x".join(dims))
        return text[:m.start()] + new + text[m.end():]
    if kind == 1:  # an integer attribute
        sites = list(INT_ATTR.finditer(text))
        if not sites:
            return None
        m = rng.choice(sites)
        return (text[:m.start(2)] + rng.choice(BOUNDARY_INTS) +
                text[m.end(2):])
    if kind == 2:  # an element type
        sites = [m for m in re.finditer(
            r"(?<=x)(f32|bf16|f16|f64|i8|i32|i64)(?=>)", text)]
        if not sites:
            return None
        m = rng.choice(sites)
        return text[:m.start()] + rng.choice(ELEMENT_TYPES) + text[m.end():]
    if kind == 3:  # a shaped type's rank
        sites = [m for m in SHAPED.finditer(text) if "x" in m.group(2)]
        if not sites:
            return None
        m = rng.choice(sites)
        dims = m.group(2).split("x")
        if rng.random() < 0.5 and len(dims) > 2:
            del dims[rng.randrange(len(dims) - 1)]
        else:
            dims.insert(rng.randrange(len(dims)), rng.choice(["1", "2", "?"]))
        new = "%s<%s>" % (m.group(1), "x".join(dims))
        return text[:m.start()] + new + text[m.end():]
    # Swap two SSA operands of one op.
    lines = text.split("\n")
    cand = [i for i, l in enumerate(lines)
            if len(re.findall(r"%[\w#]+", l.split("=", 1)[-1])) >= 2
            and "jamba." in l]
    if not cand:
        return None
    i = rng.choice(cand)
    head, sep, rest = lines[i].partition("=") if "=" in lines[i] else (
        "", "", lines[i])
    vals = re.findall(r"%[\w#]+", rest)
    a, b = rng.sample(range(len(vals)), 2)
    parts = re.split(r"(%[\w#]+)", rest)
    seen = -1
    for j, p in enumerate(parts):
        if re.fullmatch(r"%[\w#]+", p):
            seen += 1
            if seen == a:
                parts[j] = vals[b]
            elif seen == b:
                parts[j] = vals[a]
    lines[i] = head + sep + "".join(parts)
    return "\n".join(lines)


def upstream_fails(mlir_opt, mutant, timeout):
    """Whether upstream mlir-opt, parsing and verifying only, dies too."""
    if not os.access(mlir_opt, os.X_OK):
        return False
    try:
        p = subprocess.run([mlir_opt, "-", "-o", os.devnull,
                            "-allow-unregistered-dialect"],
                           input=mutant.encode(), capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return True
    err = p.stderr.decode(errors="replace")
    return p.returncode < 0 or any(k in err for k in FATAL_MARKERS)


def note_valid_refusal(args, mutant, flags, err, seen):
    """Records a pipeline's error on a mutant that parses and verifies.

    A pass that refuses such input should say why in its own words; the
    summary lists each distinct first line, so that a pass failing on valid
    IR with a confusing message (or an upstream pattern's) is seen.
    """
    try:
        p = subprocess.run(
            [args.jamba_opt, "-", "-o", os.devnull] +
            [f for f in flags if f == "-allow-unregistered-dialect"],
            input=mutant.encode(), capture_output=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return
    if p.returncode != 0:
        return
    first = next((l for l in err.splitlines() if "error:" in l), "")
    msg = re.sub(r"^.*?error: ", "", first)
    msg = re.sub(r"\d+", "N", msg)[:160]
    count, path = seen.get(msg, (0, None))
    if path is None:
        os.makedirs(os.path.join(args.out, "refused-valid"), exist_ok=True)
        path = os.path.join(args.out, "refused-valid",
                            "%d.mlir" % (len(seen) + 1))
        with open(path, "w", encoding="utf-8") as f:
            f.write("// %s\n" % " ".join([args.jamba_opt, path] + flags))
            f.write(mutant)
    seen[msg] = (count + 1, path)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jamba-opt", default=os.path.join(root, "build", "bin",
                                                        "jamba-opt"))
    ap.add_argument("--mlir-opt", default="/usr/lib/llvm-22/bin/mlir-opt",
                    help="upstream mlir-opt: a mutant it dies on too (parsed "
                    "and verified, no passes) is upstream's")
    ap.add_argument("--mutants", type=int, default=20,
                    help="mutants per chunk and pipeline (default 20)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--out", default=os.path.join(root, "build-fuzz",
                                                  "ir-crashes"))
    ap.add_argument("--valid-refusals", action="store_true",
                    help="also list the pipelines' errors on mutants that "
                    "parse and verify, by message")
    ap.add_argument("tests", nargs="*")
    args = ap.parse_args()
    if not os.access(args.jamba_opt, os.X_OK):
        sys.exit("mutate-ir: no jamba-opt at %s (build it, or pass "
                 "--jamba-opt)" % args.jamba_opt)
    tests = args.tests or sorted(
        os.path.join(d, f)
        for sub in ("Dialect", "Transforms", "Conversion")
        for d, _, files in os.walk(os.path.join(root, "test", sub))
        for f in files if f.endswith(".mlir"))
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    runs = refused = found = upstream = 0
    valid_refusals = {}
    for test in tests:
        flags_list = pipelines(test)
        if not flags_list:
            continue
        for ci, chunk in enumerate(chunks(test)):
            for flags in flags_list:
                for _ in range(args.mutants):
                    mutant = None
                    for _ in range(8):
                        mutant = mutate(chunk, rng)
                        if mutant is not None:
                            break
                    if mutant is None or mutant == chunk:
                        continue
                    cmd = [args.jamba_opt, "-", "-o", os.devnull] + flags
                    try:
                        p = subprocess.run(cmd, input=mutant.encode(),
                                           capture_output=True,
                                           timeout=args.timeout)
                        rc, err = p.returncode, p.stderr.decode(
                            errors="replace")
                    except subprocess.TimeoutExpired:
                        rc, err = None, "timed out after %g s" % args.timeout
                    runs += 1
                    fatal = (rc is None or rc < 0 or rc > 1 or
                             any(k in err for k in FATAL_MARKERS))
                    if not fatal:
                        refused += rc != 0
                        if rc != 0 and args.valid_refusals:
                            note_valid_refusal(args, mutant, flags, err,
                                               valid_refusals)
                        continue
                    if upstream_fails(args.mlir_opt, mutant, args.timeout):
                        # Upstream MLIR's parser or verifiers die on it too:
                        # not this project's to fix. Counted, not failed.
                        upstream += 1
                        continue
                    found += 1
                    name = "%s-%d-%d.mlir" % (
                        os.path.basename(test)[:-5], ci, found)
                    path = os.path.join(args.out, name)
                    with open(path, "w", encoding="utf-8") as f:
                        f.write("// %s\n" % " ".join(
                            shlex.quote(c) for c in
                            [args.jamba_opt, path] + flags))
                        f.write(mutant)
                    first = err.strip().splitlines()[:1] or ["(no output)"]
                    print("FOUND %s (rc %s): %s" % (path, rc, first[0]))
                    sys.stdout.flush()
    print("mutate-ir: %d runs, %d refused with an error, %d crashes or "
          "hangs, %d more in upstream MLIR's parser or verifiers" %
          (runs, refused, found, upstream))
    if valid_refusals:
        print("pass errors on input that verifies (first line of the first "
              "error, how many, an example):")
        for msg, (count, path) in sorted(valid_refusals.items(),
                                         key=lambda kv: -kv[1][0]):
            print("  %4d  %s\n        %s" % (count, msg, path))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
