#!/usr/bin/env python3
"""Compiles random model configurations and compares them with the reference.

Differential testing of the whole compiler: each round draws a Jamba config
within what config.json allows (hidden sizes, heads and kv heads, head
dimensions, layer schedules, experts and top-k, Mamba state, conv width,
expansion and dt rank, biases, tied embeddings, vocabulary; in 2 rounds of
5, two sizes made equal, e.g. d_state = d_inner), writes a seeded
random checkpoint (jamba-make-checkpoint, f32 or bf16), compiles it in one or
more variants (jamba-compile: the CPU kernels, ExpertsInt8, and the CUDA
backend's kernels run on the CPU with --cpu-with-gpu-kernels, also with
tensor cores emulated), runs a random prompt at batch 1 and as several
sequences prefilled in random chunks, and compares every row of logits with
jamba-interpret fed the same tokens (teacher forcing), as scripts/gpu-check.sh
does. A run is refused when a row's max relative error exceeds the variant's
tolerance, or a chosen id is neither the reference's argmax nor a near-tie
(routing swaps at a near-tie excepted, jamba-compare-logits
--routing-margins). A failing round keeps its directory (config, checkpoint
seed, commands, output) and the script exits 1.

    fuzz/random-models.py [--rounds 10] [--seed 1] [--variants 2]
                          [--only VARIANT,...] [--no-coincidences]
                          [--bin build/bin]
                          [--out build-fuzz/random-models]

The draws come from --seed: the same seed gives the same configs, prompts
and variants.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys

def variant(compile_flags, dtype, quantized=False, expert_inputs="f32",
            tolerance=1e-4, run_flags=(), applies=lambda c: True,
            ptxas_archs=(), greedy_ids=False, rebind=False):
    """How a round compiles, runs and checks one variant. A CUDA variant
    (`ptxas_archs`) is compiled for each architecture and its kernels
    assembled by ptxas (scripts/ptxas-check.sh --no-spills), not run. A
    variant with `greedy_ids` (compiled with --greedy-ids) also runs each
    prompt set without --logits-out, where jamba-run reads the artifact's
    greedy ids instead of its logits: the ids must be those chosen from the
    recorded logits. A `rebind` variant is compiled from a checkpoint of
    another seed and given the round's weights by jamba-rebind."""
    return dict(compile=list(compile_flags), dtype=dtype, quantized=quantized,
                expert_inputs=expert_inputs, tolerance=tolerance,
                run=list(run_flags), applies=applies,
                ptxas_archs=list(ptxas_archs), greedy_ids=greedy_ids,
                rebind=rebind)


PTXAS = next((p for p in [os.environ.get("PTXAS"), shutil.which("ptxas"),
                          "/usr/local/cuda/bin/ptxas"]
              if p and os.access(p, os.X_OK)), None)


def has_moe_layer(c):
    """Whether some layer is a MoE layer (expert parallelism needs one)."""
    return any(i % c["expert_layer_period"] == c["expert_layer_offset"]
               for i in range(c["num_hidden_layers"]))


def tensor_parallel_splits(c):
    """jamba-shard's rules for 2 ranks (docs/Sharding.md): heads, the Mamba
    inner width and the MLP width split evenly; the kv heads too, or the one
    kv head is replicated."""
    return (c["num_attention_heads"] % 2 == 0 and
            (c["num_key_value_heads"] == 1 or
             c["num_key_value_heads"] % 2 == 0) and
            c["intermediate_size"] % 2 == 0 and
            (c["hidden_size"] * c["mamba_expand"]) % 2 == 0)


VARIANTS = {
    "f32": variant([], "f32"),
    "f32-int8": variant(["--experts-int8"], "f32", quantized=True),
    "bf16": variant([], "bf16"),
    "bf16-int8": variant(["--experts-int8"], "bf16", quantized=True),
    "gpu-kernels": variant(["--cpu-with-gpu-kernels"], "f32"),
    "gpu-kernels-int8": variant(
        ["--cpu-with-gpu-kernels", "--experts-int8",
         "--gpu-expert-grouped-rows", "0"], "bf16", quantized=True),
    # Tensor cores (emulated): bf16 operands, hence bf16's tolerance; the
    # reference rounds the expert inputs as the kernel does.
    "gpu-tensor-cores": variant(
        ["--cpu-with-gpu-kernels", "--experts-int8", "--gpu-tensor-cores",
         "--gpu-expert-grouped-rows", "0"], "bf16", quantized=True,
        expert_inputs="bf16", tolerance=2e-2),
    # The scan in one pass over lanes (forced: a round's few channels are
    # far below the default threshold) and the greedy ids' argmax kernels,
    # emulated.
    "gpu-scan-lanes": variant(
        ["--cpu-with-gpu-kernels", "--gpu-scan-lane-threads", "0",
         "--greedy-ids"], "f32", greedy_ids=True),
    # The greedy ids of the CPU lowering.
    "bf16-greedy-ids": variant(["--greedy-ids"], "bf16", greedy_ids=True),
    # Two ranks as threads of one process (jamba-run --ranks 2): sharded
    # output must equal unsharded output.
    "tensor-parallel": variant(["--tensor-parallel", "2"], "f32",
                               run_flags=["--ranks", "2"],
                               applies=tensor_parallel_splits),
    # The CUDA backend: every kernel it emits for the config assembles
    # without spills for sm_80 and sm_90 (needs ptxas; no GPU).
    "cuda-ptxas": variant(["--experts-int8", "--gpu-tensor-cores"], "bf16",
                          ptxas_archs=["sm_80", "sm_90"]),
    # Compiled from another checkpoint, then rebound to the round's: every
    # rank's cut of the weights as the manifest records it (schema 1.2),
    # ExpertsInt8 quantized while the weights are written.
    "rebind-tensor-parallel": variant(
        ["--tensor-parallel", "2", "--experts-int8"], "bf16", quantized=True,
        run_flags=["--ranks", "2"], applies=tensor_parallel_splits,
        rebind=True),
    "expert-parallel": variant(
        ["--expert-parallel", "2", "--experts-int8"], "f32", quantized=True,
        run_flags=["--ranks", "2"],
        applies=lambda c: c["num_experts"] % 2 == 0 and has_moe_layer(c)),
}


def random_config(rng, base):
    c = dict(base)
    heads = rng.choice([1, 2, 3, 4, 6, 8])
    c["num_attention_heads"] = heads
    c["num_key_value_heads"] = rng.choice(
        [d for d in range(1, heads + 1) if heads % d == 0])
    c["hidden_size"] = heads * rng.choice([4, 8, 12, 16, 20, 32])
    c["intermediate_size"] = rng.randint(3, 100)
    c["num_hidden_layers"] = rng.randint(1, 6)
    c["attn_layer_period"] = rng.randint(1, 4)
    c["attn_layer_offset"] = rng.randrange(c["attn_layer_period"])
    c["expert_layer_period"] = rng.randint(1, 3)
    c["expert_layer_offset"] = rng.randrange(c["expert_layer_period"])
    c["num_experts"] = rng.randint(1, 6)
    c["num_experts_per_tok"] = rng.randint(1, min(3, c["num_experts"]))
    c["mamba_d_state"] = rng.randint(1, 20)
    c["mamba_d_conv"] = rng.randint(1, 5)
    c["mamba_expand"] = rng.randint(1, 3)
    c["mamba_dt_rank"] = rng.choice([rng.randint(1, 12), "auto"])
    c["mamba_conv_bias"] = rng.random() < 0.7
    c["mamba_proj_bias"] = rng.random() < 0.3
    c["tie_word_embeddings"] = rng.random() < 0.3
    c["vocab_size"] = rng.randint(8, 300)
    c["rms_norm_eps"] = rng.choice([1e-6, 1e-5, 1e-3])
    c["bos_token_id"], c["eos_token_id"], c["pad_token_id"] = 1, 2, 0
    return c


def small_hidden(c):
    """Makes the hidden size at most 64: one head of 32 when it is larger."""
    if c["hidden_size"] > 64:
        c["num_attention_heads"] = c["num_key_value_heads"] = 1
        c["hidden_size"] = 32


def d_state_is_d_inner(c):
    small_hidden(c)
    c["mamba_expand"] = 1
    c["mamba_d_state"] = c["hidden_size"]


def d_state_is_head_dim(c):
    c["mamba_d_state"] = c["hidden_size"] // c["num_attention_heads"]


# Sizes made equal, so that tensors of two roles get one type: a pass that
# tells them apart by type alone (CSE merging two kernels' reads, a buffer
# reused in place) is wrong only then. d_inner = d_state was wrong on the
# CPU microkernels until 2026-12-03 (docs/Fuzzing.md) and the uniform draws
# reach it about once in 200 rounds.
COINCIDENCES = {
    "d_state = d_inner": d_state_is_d_inner,
    "d_state = head_dim": d_state_is_head_dim,
    "d_state = dt_rank": lambda c: c.update(
        mamba_dt_rank=c["mamba_d_state"]),
    "intermediate = hidden": lambda c: c.update(
        intermediate_size=c["hidden_size"]),
    "intermediate = d_inner": lambda c: c.update(
        intermediate_size=c["mamba_expand"] * c["hidden_size"]),
    "intermediate = kv width": lambda c: c.update(
        intermediate_size=c["num_key_value_heads"] * c["hidden_size"]
        // c["num_attention_heads"]),
    "vocab = hidden": lambda c: c.update(
        vocab_size=max(8, c["hidden_size"])),
    "vocab = d_inner": lambda c: c.update(
        vocab_size=max(8, c["mamba_expand"] * c["hidden_size"])),
    "dt_rank = hidden": lambda c: c.update(
        mamba_dt_rank=c["hidden_size"]),
    "experts = top-k": lambda c: c.update(
        num_experts_per_tok=min(3, c["num_experts"]),
        num_experts=min(3, c["num_experts"])),
}


def coincide(seed, index, config):
    """In 2 rounds of 5, makes two sizes of `config` equal (COINCIDENCES),
    from a generator of its own (the other draws stay those of a seed);
    returns the coincidence's name, or None."""
    r = random.Random("coincide %d %d" % (seed, index))
    if r.random() >= 0.4:
        return None
    name = r.choice(sorted(COINCIDENCES))
    COINCIDENCES[name](config)
    return name


def run(cmd, log, **kw):
    log.write("$ " + " ".join(cmd) + "\n")
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    log.write(p.stdout + p.stderr)
    return p


def check_ptxas(b, ckpt, d, name, v, log):
    """Compiles `ckpt` for each of the variant's archs, dumping the PTX, and
    assembles every module; returns the failures."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    failures = []
    if PTXAS is None:
        # Drawn all the same, so that a seed draws the same rounds with or
        # without a CUDA toolkit.
        log.write("%s: skipped, no ptxas\n" % name)
        print("  %s skipped: no ptxas (set PTXAS)" % name)
        return failures
    for arch in v["ptxas_archs"]:
        ptx = os.path.join(d, "ptx-" + arch)
        p = run([b + "/jamba-compile", ckpt, "-o",
                 os.path.join(d, "art-%s-%s" % (name, arch)), "--force",
                 "--target", "cuda:" + arch, "--dump-ptx", ptx] +
                v["compile"], log)
        if p.returncode:
            failures.append("%s %s: jamba-compile failed: %s" % (
                name, arch, (p.stderr.strip().splitlines() or ["?"])[-1]))
            continue
        p = run([os.path.join(root, "scripts", "ptxas-check.sh"),
                 "--no-spills", ptx, arch], log,
                env=dict(os.environ, PTXAS=PTXAS))
        if p.returncode:
            failures.append("%s %s: %s" % (
                name, arch, " ".join(p.stderr.strip().splitlines()[:3])))
    return failures


def one_round(args, rng, index, out):
    base = json.load(open(args.base))
    config = random_config(rng, base)
    coincidence = (coincide(args.seed, index, config) if args.coincidences
                   else None)
    names = [n for n in sorted(VARIANTS) if VARIANTS[n]["applies"](config)
             and (not args.only or n in args.only)]
    names = rng.sample(names, min(args.variants, len(names)))
    d = os.path.join(out, "round-%d" % index)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    log = open(os.path.join(d, "log.txt"), "w")
    json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=2)
    b = args.bin
    vocab = config["vocab_size"]
    # Short prompts, and long ones (the GPU kernels' scan splits more than
    # 64 steps into chunks; the expert GEMMs group more than 64 rows).
    prompts = [",".join(str(rng.randrange(vocab)) for _ in range(
        rng.choice([rng.randint(1, 40), rng.randint(60, 200)])))
               for _ in range(rng.randint(2, 3))]
    new_tokens = rng.randint(1, 10)
    chunk = rng.choice([rng.randint(1, 16), rng.randint(17, 256)])
    # The host object's split for parallel code generation (jamba-compile
    # --codegen-parts), from a generator of its own so that the draws above
    # stay those of earlier versions of this script for a seed.
    parts = random.Random("codegen-parts %d %d" % (args.seed, index)).randint(
        1, 8)
    # Each rank's weights in files of at most this many bytes (jamba-compile
    # --weights-file-size) in half the rounds, from a generator of its own
    # too; the default (2G: one file) in the others.
    sizes = random.Random("weights-file-size %d %d" % (args.seed, index))
    file_size = (["--weights-file-size", str(sizes.randint(1, 1 << 18))]
                 if sizes.random() < 0.5 else [])
    # The CPU attention's split-KV in ranges of 1 to 64 keys (jamba-compile
    # --cpu-attention-split-keys; the default, 2048, splits none of these
    # short contexts) in half the rounds, from a generator of its own too;
    # the variants of the GPU kernels (whose attention it is not) without.
    splits = random.Random("attention-split-keys %d %d" % (args.seed, index))
    split_keys = (["--cpu-attention-split-keys", str(splits.randint(1, 64))]
                  if splits.random() < 0.5 else [])
    failures = []
    for name in names:
        v = VARIANTS[name]
        flags, dtype, quantized = v["compile"], v["dtype"], v["quantized"]
        expert_inputs, tol = v["expert_inputs"], v["tolerance"]
        ckpt = os.path.join(d, "ckpt-" + dtype)
        if not os.path.isdir(ckpt):
            p = run([b + "/jamba-make-checkpoint", os.path.join(d, "config.json"),
                     ckpt, "--seed", str(index), "--dtype", dtype], log)
            if p.returncode:
                failures.append("%s: jamba-make-checkpoint failed" % name)
                continue
        ref_ckpt = ckpt
        if quantized:
            ref_ckpt = ckpt + "-q8"
            if not os.path.isdir(ref_ckpt) and run(
                    [b + "/jamba-quantize", ckpt, ref_ckpt], log).returncode:
                failures.append("%s: jamba-quantize failed" % name)
                continue
        if v["ptxas_archs"]:
            failures += check_ptxas(b, ckpt, d, name, v, log)
            continue
        art = os.path.join(d, "art-" + name)
        source = ckpt
        if v["rebind"]:
            source = ckpt + "-other"
            if not os.path.isdir(source) and run(
                    [b + "/jamba-make-checkpoint",
                     os.path.join(d, "config.json"), source, "--seed",
                     str(index + 100000), "--dtype", dtype], log).returncode:
                failures.append("%s: jamba-make-checkpoint failed" % name)
                continue
        compiled = art + "-code" if v["rebind"] else art
        p = run([b + "/jamba-compile", source, "-o", compiled, "--force",
                 "--prefill-logits", "all", "--max-context", "512",
                 "--max-seq", "256", "--codegen-parts", str(parts)] +
                file_size +
                ([] if "--cpu-with-gpu-kernels" in flags else split_keys) +
                flags,
                log)
        if p.returncode:
            failures.append("%s: jamba-compile failed: %s" % (
                name, (p.stderr.strip().splitlines() or ["?"])[-1]))
            continue
        if v["rebind"]:
            p = run([b + "/jamba-rebind", compiled, ckpt, "-o", art,
                     "--force"], log)
            if p.returncode:
                failures.append("%s: jamba-rebind failed: %s" % (
                    name, (p.stderr.strip().splitlines() or ["?"])[-1]))
                continue
        runs = [("batch1", [prompts[0]], [])]
        runs.append(("multi", prompts, ["--seq", str(chunk)]))
        for label, ps, extra in runs:
            npy = os.path.join(d, "%s-%s.npy" % (name, label))
            cmd = [b + "/jamba-run", art, "-n", str(new_tokens), "--ignore-eos",
                   "--logits-out", npy] + extra + v["run"]
            for q in ps:
                cmd += ["--prompt-ids", q]
            p = run(cmd, log, timeout=600)
            if p.returncode:
                failures.append("%s %s: jamba-run failed: %s" % (
                    name, label, (p.stderr.strip().splitlines() or ["?"])[-1]))
                continue
            ids = p.stdout.strip().splitlines()
            if v["greedy_ids"]:
                g = run([a for a in cmd if a not in ("--logits-out", npy)],
                        log, timeout=600)
                chose = "the artifact chose the greedy ids"
                if g.returncode:
                    failures.append("%s %s: jamba-run without --logits-out "
                                    "failed: %s" % (name, label, (
                                        g.stderr.strip().splitlines()
                                        or ["?"])[-1]))
                elif g.stdout.strip().splitlines() != ids:
                    failures.append("%s %s: the artifact's greedy ids %s "
                                    "differ from those of its logits %s" % (
                                        name, label,
                                        g.stdout.strip().splitlines(), ids))
                elif chose not in g.stderr:
                    failures.append("%s %s: jamba-run did not say '%s'" % (
                        name, label, chose))
            for i, q in enumerate(ps):
                test = npy if len(ps) == 1 else npy[:-4] + ".%d.npy" % i
                ref = test[:-4] + ".ref.npy"
                margins = test[:-4] + ".margins.npy"
                r = run([b + "/jamba-interpret", ref_ckpt, "--prompt-ids",
                         q + "," + ids[i], "-n", "0", "--expert-inputs",
                         expert_inputs, "--logits-out", ref,
                         "--routing-margins-out", margins], log)
                if r.returncode:
                    failures.append("%s %s: jamba-interpret failed" % (
                        name, label))
                    continue
                c = run([b + "/jamba-compare-logits", test, ref,
                         "--tolerance", str(tol), "--chosen-ids", ids[i],
                         "--ids-from-row", str(len(q.split(",")) - 1),
                         "--routing-margins", margins,
                         "--routing-tolerance", str(tol / 4)], log)
                if c.returncode:
                    failures.append("%s %s seq %d: %s" % (
                        name, label, i, (c.stdout + c.stderr).strip()
                        .splitlines()[-1]))
    log.close()
    summary = ("heads %d/%d hidden %d layers %d experts %d top-%d d_state %d "
               "d_conv %d expand %d dt_rank %s vocab %d" % (
                   config["num_attention_heads"],
                   config["num_key_value_heads"], config["hidden_size"],
                   config["num_hidden_layers"], config["num_experts"],
                   config["num_experts_per_tok"], config["mamba_d_state"],
                   config["mamba_d_conv"], config["mamba_expand"],
                   config["mamba_dt_rank"], config["vocab_size"]))
    summary += ", %d code parts" % parts
    if file_size:
        summary += ", weights files of %s bytes" % file_size[1]
    if split_keys:
        summary += ", attention splits of %s keys" % split_keys[1]
    if coincidence:
        summary += ", " + coincidence
    if failures:
        print("round %d FAILED (%s; %s): kept %s" % (
            index, summary, ", ".join(names), d))
        for f in failures:
            print("  " + f)
    else:
        print("round %d ok (%s; %s)" % (index, summary, ", ".join(names)))
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    sys.stdout.flush()
    return not failures


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variants", type=int, default=2,
                    help="variants compiled per config (default 2, drawn "
                    "from %s)" % ", ".join(sorted(VARIANTS)))
    ap.add_argument("--coincidences", action=argparse.BooleanOptionalAction,
                    default=True,
                    help="in 2 rounds of 5, make two sizes equal "
                    "(d_state = d_inner, ...); --no-coincidences keeps the "
                    "draws of a seed from before 2026-12-03")
    ap.add_argument("--only", type=lambda v: v.split(","), default=[],
                    help="draw the variants from these only (comma-separated)")
    ap.add_argument("--bin", default=os.path.join(root, "build", "bin"))
    ap.add_argument("--base", default=os.path.join(root, "examples", "models",
                                                   "jamba-tiny.json"),
                    help="the config whose other keys the draws keep")
    ap.add_argument("--out", default=os.path.join(root, "build-fuzz",
                                                  "random-models"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the directories of rounds that pass too")
    args = ap.parse_args()
    unknown = [v for v in args.only if v not in VARIANTS]
    if unknown:
        sys.exit("random-models: unknown variant %s (known: %s)" % (
            ", ".join(unknown), ", ".join(sorted(VARIANTS))))
    for tool in ("jamba-make-checkpoint", "jamba-compile", "jamba-run",
                 "jamba-interpret", "jamba-compare-logits", "jamba-quantize",
                 "jamba-rebind"):
        if not os.access(os.path.join(args.bin, tool), os.X_OK):
            sys.exit("random-models: no %s in %s (build it, or pass --bin)" %
                     (tool, args.bin))
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)
    failed = 0
    for i in range(args.rounds):
        failed += not one_round(args, rng, i, args.out)
    print("random-models: %d rounds, %d failed" % (args.rounds, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
