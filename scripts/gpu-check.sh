#!/usr/bin/env bash
# The GPU check, in one call (issue 6): builds what it needs, runs the GPU
# tests (compiled CUDA artifacts against the reference interpreter) and the
# GPU benchmarks, and prints a table last. On a machine without a GPU it
# says "skipped: no GPU (...)" and exits 0 after building.
#
#   scripts/gpu-check.sh [--quick] [--cpu-dry-run]
#     --quick        jamba-tiny only
#     --cpu-dry-run  the same steps with CPU artifacts on the CPU (no GPU
#                    needed): checks this script's own plumbing
#
# Tests: jamba-tiny and jamba-small, f32 and bf16 checkpoints, with and
# without ExpertsInt8; batch 1 (one prompt) and three sequences of different
# lengths prefilled in chunks of 8; greedy ids compared with jamba-interpret
# and logits with jamba-compare-logits (max relative error over the rows:
# f32 <= 1e-3, bf16 <= 2e-2).
# Benchmarks: the device copy bandwidth and the cuBLAS bf16 GEMM rate
# (jamba-bench-cuda, the ceilings);
# jamba-small's decode at batch 1, 8 and 32 and prefill of 1024 tokens, and
# the same for a jamba-1.5-mini-shaped two-layer stack at real widths
# (decode at batch 1, 8, 32, prefill of 8192 tokens), as jamba-run reports
# them; decode's achieved rate (the bytes a step must read: the non-expert
# weights and the experts the batch is expected to route to, per step
# time) as a fraction of the copy bandwidth. Kernel rows: profiled runs of
# the mini stack (jamba-run --profile-kernels: GPU time per op from CUDA
# events) give the int8 expert GEMM's GB/s at decode batch 1, 8, 32 (and
# its time per expert matrix next to cuBLAS bf16 on the same shape: the
# dense MLP layer's gate projection, B x 14336 x 4096) and the selective
# scan's at an 8192-token prefill, against the copy bandwidth, with each
# run's top ops.
set -uo pipefail
quick=0
dry=0
for arg in "$@"; do
  case "$arg" in
  --quick) quick=1 ;;
  --cpu-dry-run) dry=1 ;;
  *)
    echo "gpu-check: unknown option '$arg' (--quick, --cpu-dry-run)" >&2
    exit 2
    ;;
  esac
done
JAMBA_TARGETS="jamba-make-checkpoint jamba-compile jamba-run jamba-interpret \
jamba-compare-logits jamba-bench-cuda jamba-quantize" \
  source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
set +e
bin="$JAMBA_BUILD_DIR/bin"
models="$JAMBA_ROOT/../shared/models"
[ -f "$models/jamba-tiny.json" ] || models="$JAMBA_ROOT/examples/models"
work="${JAMBA_GPU_CHECK_DIR:-$JAMBA_BUILD_DIR/gpu-check}"
mkdir -p "$work"
rows=()
status=0

if [ $dry = 1 ]; then
  probe="device: the CPU (--cpu-dry-run) (sm_cpu, dry run)"
  probe_rc=0
else
  probe=$("$bin/jamba-bench-cuda" --mib 1024 --reps 20 2>&1)
  probe_rc=$?
fi
if [ $probe_rc -eq 3 ]; then
  echo "$probe"
  echo "gpu-check: skipped: no GPU"
  exit 0
elif [ $probe_rc -ne 0 ]; then
  echo "$probe" >&2
  exit 1
fi
echo "$probe"
arch=$(echo "$probe" | sed -n 's/^device: .*(\(sm_[0-9a-z]*\),.*/\1/p')
copy_gbs=$(echo "$probe" | sed -n 's/.* \([0-9.]*\) GB\/s.*/\1/p')
device=cuda
target="cuda:$arch"
if [ $dry = 1 ]; then
  device=cpu
  target=cpu
  copy_gbs=
fi
[ -n "$arch" ] || { echo "gpu-check: cannot read the device's arch" >&2; exit 1; }
rows+=("ceiling | device copy bandwidth | ${copy_gbs:-n/a} GB/s | jamba-bench-cuda, 1 GiB D2D")
gemm_line=$(echo "$probe" | sed -n 's/^gemm: //p')
if [ -n "$gemm_line" ]; then
  rows+=("ceiling | cuBLAS bf16 GEMM rate | $(echo "$gemm_line" | sed -n 's/.* \([0-9.]*\) TFLOP\/s.*/\1/p') TFLOP/s | $gemm_line")
fi

prompts=(
  "1,17,42,5,9,100,3,77,12,64,31,8,90,2,55,21,4,6,88,13,7,99,42,18,3,61,25,11,70,5,39,14"
  "4,8,15,16,23,42,7,1,99,3,27"
  "9,2"
)

check_variant() { # model dtype int8(0|1)
  local model=$1 dtype=$2 q=$3 name="$1 $2$([ "$3" = 1 ] && echo " +int8")"
  local ckpt="$work/$model-$dtype" art="$work/$model-$dtype-q$q.art"
  local tol=1e-3
  [ "$dtype" = bf16 ] && tol=2e-2
  [ -d "$ckpt" ] || "$bin/jamba-make-checkpoint" "$models/$model.json" "$ckpt" \
    --seed 5 --dtype "$dtype" >/dev/null
  local ref="$ckpt"
  local flags=(--target "$target" --force)
  if [ "$q" = 1 ]; then
    flags+=(--experts-int8)
    ref="$ckpt-q8"
    [ -d "$ref" ] || "$bin/jamba-quantize" "$ckpt" "$ref" >/dev/null
  fi
  if ! "$bin/jamba-compile" "$ckpt" -o "$art" "${flags[@]}" >"$work/compile.log" 2>&1; then
    rows+=("test | $name compile | FAILED | $(tail -1 "$work/compile.log")")
    status=1
    return
  fi
  # batch 1
  "$bin/jamba-run" "$art" --device "$device" --prompt-ids "${prompts[0]}" -n 16 \
    --ignore-eos --logits-out "$work/run.npy" >"$work/run.ids" 2>"$work/run.log"
  "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[0]}" -n 16 \
    --logits-out "$work/ref.npy" >"$work/ref.ids" 2>/dev/null
  local ids=identical
  cmp -s "$work/run.ids" "$work/ref.ids" || ids=DIFFER
  local cmpout
  cmpout=$("$bin/jamba-compare-logits" "$work/run.npy" "$work/ref.npy" --tolerance "$tol" 2>&1)
  local rc=$?
  [ $rc -eq 0 ] && [ $ids = identical ] || status=1
  rows+=("test | $name batch 1 | $([ $rc -eq 0 ] && echo ok || echo FAILED) | ids $ids; $cmpout")
  # three sequences, prefill chunks of 8
  local args=()
  for p in "${prompts[@]}"; do args+=(--prompt-ids "$p"); done
  "$bin/jamba-run" "$art" --device "$device" "${args[@]}" -n 8 --seq 8 --ignore-eos \
    --logits-out "$work/multi.npy" >"$work/multi.ids" 2>>"$work/run.log"
  for i in 0 1 2; do
    "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[$i]}" -n 8 \
      --logits-out "$work/ref.$i.npy" >"$work/ref.$i.ids" 2>/dev/null
    ids=identical
    [ "$(sed -n "$((i + 1))p" "$work/multi.ids")" = "$(cat "$work/ref.$i.ids")" ] || ids=DIFFER
    cmpout=$("$bin/jamba-compare-logits" "$work/multi.$i.npy" "$work/ref.$i.npy" --tolerance "$tol" 2>&1)
    rc=$?
    [ $rc -eq 0 ] && [ $ids = identical ] || status=1
    rows+=("test | $name seq $i of 3 | $([ $rc -eq 0 ] && echo ok || echo FAILED) | ids $ids; $cmpout")
  done
}

models_to_check=(jamba-tiny)
[ $quick = 1 ] || models_to_check+=(jamba-small)
for model in "${models_to_check[@]}"; do
  for dtype in f32 bf16; do
    for q in 0 1; do
      check_variant "$model" "$dtype" "$q"
    done
  done
done

# Bytes of an artifact's weights: "EXPERT OTHER EXPERTS TOP_K" (the expert
# tensors' bytes, the rest's, the expert count and top-k), read from the
# safetensors header and the manifest's config.
weight_split() { # artifact
  python3 - "$1" <<'PY'
import json, struct, sys
art = sys.argv[1]
with open(art + "/weights/rank-0.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
expert = other = 0
for name, t in header.items():
    if name == "__metadata__":
        continue
    size = t["data_offsets"][1] - t["data_offsets"][0]
    if ".experts." in name:
        expert += size
    else:
        other += size
config = json.load(open(art + "/manifest.json"))["model"]
print(expert, other, config.get("num_experts", 1), config.get("num_experts_per_tok", 1))
PY
}

# One decode benchmark row. The bytes a step must read: every non-expert
# weight, and the experts the batch routes to, expected with uniform routing:
# E (1 - (1 - k/E)^B) of the E experts (random weights route about
# uniformly). The achieved rate is those bytes per step time, and its
# fraction of the copy bandwidth is the decode roofline fraction.
bench_decode() { # label artifact batch
  local label=$1 art=$2 batch=$3 split out tps
  split=$(weight_split "$art") || split=
  out=$("$bin/jamba-run" "$art" --device "$device" --prompt-ids 1,2,3 --batch "$batch" \
    -n 32 --ignore-eos 2>&1 >/dev/null | grep "decode .* tokens")
  tps=$(echo "$out" | sed -n 's/.*decode [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p')
  if [ -z "$tps" ]; then
    rows+=("bench | $label decode batch $batch | FAILED | $out")
    status=1
  elif [ -n "$copy_gbs" ] && [ -n "$split" ]; then
    rows+=("bench | $label decode batch $batch | $tps tok/s | $(echo "$split" | awk \
      -v t="$tps" -v b="$batch" -v c="$copy_gbs" '{
        e = $3; k = $4; touched = e * (1 - (1 - k / e) ^ b);
        bytes = $2 + $1 * touched / e; step = b / t;
        printf "%.1f%% of the copy bandwidth (%.1f GB/s: %.2f GB per step, %.1f of %d experts)",
          100 * bytes / step / 1e9 / c, bytes / step / 1e9, bytes / 1e9, touched, e }')")
  else
    rows+=("bench | $label decode batch $batch | $tps tok/s | no ceiling measured")
  fi
}

bench_prefill() { # label artifact tokens seq
  local label=$1 art=$2 tokens=$3 seq=$4 out tps
  # Ids 1..1000 repeated: inside every vocabulary here.
  local ids
  ids=$(seq 0 $((tokens - 1)) | awk '{ printf "%s%d", (NR > 1 ? "," : ""), $1 % 1000 + 1 }')
  out=$("$bin/jamba-run" "$art" --device "$device" --prompt-ids "$ids" \
    --seq "$seq" -n 1 --ignore-eos 2>&1 >/dev/null | grep "prefill")
  tps=$(echo "$out" | sed -n 's/.*prefill [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p')
  [ -n "$tps" ] || status=1
  rows+=("bench | $label prefill $tokens tokens | ${tps:-FAILED} tok/s | ${out:-no output}")
}

# Per-op GPU time of a profiled run (jamba-run --profile-kernels):
# "MS LAUNCHES" summed over the ops whose names start with "$2" ("decode
# expert_gemm": the lane form's and the grouped form's kernels) in the
# profile text $1, or nothing; $3, if given, names the op whose launches
# are reported instead of the sum of all launches.
profile_op() { # profile-text op-prefix [op-counted]
  echo "$1" | awk -v op="$2" -v counted="${3:-}" '
    /^jamba-run: kernel profile by op:/ { on = 1; next }
    /kernel profile by kernel:/ { on = 0 }
    on && NF >= 5 { name = $5; for (i = 6; i <= NF; ++i) name = name " " $i
                    if (index(name, op) == 1) { ms += $1; found = 1
                      if (counted == "" || name == counted) n += $3 } }
    END { if (found) print ms, n }'
}

# "MEAN_US LAUNCHES" of the kernel named "$2" in the per-kernel table.
profile_kernel() { # profile-text kernel-name
  echo "$1" | awk -v k="$2" '
    /kernel profile by kernel:/ { on = 1; next }
    on && NF >= 5 { name = $5; for (i = 6; i <= NF; ++i) name = name " " $i
                    if (name == k) { print $4, $3; exit } }'
}

# The top ops of a profiled run, "op X% ..." (the first `n`).
profile_top() { # profile-text n
  echo "$1" | awk -v n="$2" '
    /^jamba-run: kernel profile by op:/ { on = 1; next }
    /kernel profile by kernel:/ { on = 0 }
    on && NF >= 5 && $1 != "GPU" && shown < n {
      name = $5; for (i = 6; i <= NF; ++i) name = name " " $i
      printf "%s%s %s%%", (shown ? ", " : ""), name, $2; ++shown }'
}

# Kernel benchmarks from profiled runs of the mini stack (GPU time per op,
# CUDA events; decode without graphs). Decode at batch B: the expert GEMM
# (its lanes and epilogue kernels) reads the routed experts' int8 weights,
# E (1 - (1 - k/E)^B) of E experts per projection, three projections per
# step; achieved GB/s against the copy bandwidth. Prefill: the selective
# scan reads delta, u and z and writes y (f32, T x D each: 16 T D bytes;
# B and C are small), against the copy bandwidth (target: 60%).
bench_profile() { # label artifact
  local label=$1 art=$2 split prof ms launches hidden ffn
  split=$(weight_split "$art") || split=
  read -r hidden ffn <<<"$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))
print(c["hidden_size"], c["intermediate_size"])' "$mini.json")"
  for batch in 1 8 32; do
    prof=$("$bin/jamba-run" "$art" --device "$device" --prompt-ids 1,2,3 --batch "$batch" \
      -n 17 --ignore-eos --profile-kernels 2>&1 >/dev/null)
    # All the expert GEMM's kernels; one epilogue (lane form) or one
    # grouped kernel per GEMM.
    local gemms
    read -r ms _ <<<"$(profile_op "$prof" "decode expert_gemm")"
    gemms=$(($(profile_op "$prof" "decode expert_gemm_epilogue" | awk '{ n = $2 } END { print n + 0 }') + \
      $(profile_op "$prof" "decode expert_gemm_grouped" | awk '{ n = $2 } END { print n + 0 }')))
    launches=$gemms
    if [ -z "$ms" ] || [ -z "$split" ] || [ "$gemms" -eq 0 ]; then
      rows+=("kernel | $label decode batch $batch expert GEMM | FAILED | $(echo "$prof" | tail -1)")
      status=1
      continue
    fi
    # The dense MLP layer's gate projection: cuBLAS bf16 on one matrix of
    # the experts' shape, for the batch's rows.
    local cublas_us
    read -r cublas_us _ <<<"$(profile_kernel "$prof" "cublas_gemm_bf16 ${batch}x${ffn}x${hidden}")"
    rows+=("kernel | $label decode batch $batch expert GEMM | $(echo "$split" | awk \
      -v ms="$ms" -v n="$launches" -v b="$batch" -v c="$copy_gbs" \
      -v cub="${cublas_us:-}" '{
        e = $3; k = $4; touched = e * (1 - (1 - k / e) ^ b);
        bytes = $1 * touched / e / 3; us = 1e3 * ms / n;
        printf "%.1f us per GEMM (%.1f GB/s, %.1f%% of the copy bandwidth; %.0f MB of int8 experts)",
          us, bytes / us / 1e3, 100 * bytes / us / 1e3 / c, bytes / 1e6
        if (cub != "")
          printf "; %.1f us per expert matrix vs cuBLAS bf16 %.1f us on the same shape (%.2fx)",
            us / touched, cub, cub / (us / touched) }') | $(profile_top "$prof" 5)")
  done
  prof=$("$bin/jamba-run" "$art" --device "$device" --prompt-ids "$(seq 0 8191 | awk \
    '{ printf "%s%d", (NR > 1 ? "," : ""), $1 % 1000 + 1 }')" --seq 4096 -n 1 --ignore-eos \
    --profile-kernels 2>&1 >/dev/null)
  # The scan's kernels: its chunks from zero, the carry, the chunks again.
  read -r ms launches <<<"$(profile_op "$prof" "prefill selective_scan" "prefill selective_scan")"
  if [ -z "$ms" ]; then
    rows+=("kernel | $label prefill 8192 selective scan | FAILED | $(echo "$prof" | tail -1)")
    status=1
  else
    local d
    d=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["mamba_expand"]*c["hidden_size"])' "$mini.json")
    rows+=("kernel | $label prefill 8192 selective scan | $(awk -v ms="$ms" -v n="$launches" \
      -v d="$d" -v c="$copy_gbs" 'BEGIN { bytes = 16 * 8192 * d; gbs = bytes / (ms / 1e3) / 1e9;
        printf "%.2f ms in %d launches (%.1f GB/s, %.1f%% of the copy bandwidth)", ms, n, gbs, 100 * gbs / c }') | $(profile_top "$prof" 6)")
  fi
}

if [ $quick = 0 ]; then
  # jamba-small, bf16 + ExpertsInt8 (the serving configuration).
  art="$work/jamba-small-bf16-q1.art"
  for batch in 1 8 32; do
    bench_decode jamba-small "$art" "$batch"
  done
  bench_prefill jamba-small "$art" 1024 1024

  # A jamba-1.5-mini-shaped layer stack at real widths (hidden 4096,
  # 16 experts of 14336, vocab 65536), random bf16 weights, ExpertsInt8:
  # two layers, a Mamba layer with the dense MLP and an attention layer
  # with the MoE. The dry run scales the widths down (the plumbing only).
  mini="$work/jamba-mini-stack"
  python3 - "$models/jamba-1.5-mini.json" "$mini.json" "$dry" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config.update(num_hidden_layers=2, attn_layer_period=2, attn_layer_offset=1,
              expert_layer_period=2, expert_layer_offset=1)
if sys.argv[3] == "1":
    config.update(hidden_size=256, intermediate_size=512, vocab_size=1024,
                  mamba_dt_rank=16, num_attention_heads=8, num_key_value_heads=2)
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY
  if [ ! -d "$mini.ckpt" ]; then
    "$bin/jamba-make-checkpoint" "$mini.json" "$mini.ckpt" --seed 5 --dtype bf16 >/dev/null
  fi
  if "$bin/jamba-compile" "$mini.ckpt" -o "$mini.art" --target "$target" --experts-int8 \
    --force >"$work/compile.log" 2>&1; then
    for batch in 1 8 32; do
      bench_decode "jamba-1.5-mini stack (2 layers)" "$mini.art" "$batch"
    done
    bench_prefill "jamba-1.5-mini stack (2 layers)" "$mini.art" 8192 4096
    if [ $dry = 0 ]; then
      bench_profile "jamba-1.5-mini stack" "$mini.art"
    else
      rows+=("kernel | per-kernel GPU times | skipped | --profile-kernels needs CUDA")
    fi
  else
    rows+=("bench | jamba-1.5-mini stack compile | FAILED | $(tail -1 "$work/compile.log")")
    status=1
  fi
fi

echo
echo "== gpu-check ($arch) =="
printf '%s\n' "${rows[@]}" | column -t -s '|'
exit $status
