#!/usr/bin/env bash
# The GPU check (issue 6): the GPU tests (compiled CUDA artifacts against
# the reference interpreter) and the GPU benchmarks, with a table last.
#
#   scripts/gpu-check.sh [--quick] [--cpu-dry-run]
#       everything on this machine, which needs the build toolchain
#       (scripts/setup.sh) and a GPU: builds, compiles, runs, compares
#       and benchmarks. Without a GPU: "skipped: no GPU (...)", exit 0.
#
#   A GPU machine without LLVM/MLIR gets the work in three steps:
#   scripts/gpu-check.sh --bundle DIR [--arch sm_90] [--quick] [--cpu-dry-run]
#       here: builds, compiles every artifact (cubin for the arch) and
#       writes DIR: the MLIR-free tools (jamba-run, jamba-bench-cuda, jamba-bench-sampling,
#       jamba-make-checkpoint, jamba-rebind) with the shared libraries they
#       need beyond glibc and libstdc++, the artifacts' code without weights
#       and the model configs (about 70 MB), and DIR.tgz, the same packed
#       (about 17 MB: a device call carries at most 64 MiB).
#   scripts/gpu-check.sh --from-bundle DIR|DIR.tgz --results RES
#       on the GPU machine: remakes the seeded checkpoints, gives the
#       artifacts their weights (jamba-rebind), runs the tests and the
#       benchmarks; writes to RES the runs' ids and logits (one .tgz per
#       jamba-small variant, one for all of jamba-tiny), rows.txt and
#       profiles.tgz: 8 files, as many as a device call returns (keep the
#       command's log out of RES).
#   scripts/gpu-check.sh --compare DIR RES
#       here again: runs the reference interpreter on what the GPU runs were
#       fed, compares and prints the whole table.
#
#     --quick        jamba-tiny only, no benchmarks
#     --cpu-dry-run  the same steps with CPU artifacts on the CPU (no GPU
#                    needed): checks this script's own plumbing
#
# Tests: jamba-tiny and jamba-small, f32 and bf16 checkpoints, with and
# without ExpertsInt8; batch 1 (one prompt) and three sequences of different
# lengths prefilled in chunks of 8, greedy. The reference: jamba-interpret
# fed each prompt and the ids the run chose (teacher forcing); with bf16
# weights its dense linears round their inputs to bf16 as the cuBLAS GEMMs
# do (--gemm-inputs bf16). jamba-compare-logits: the max relative error of
# each row (f32 <= 1e-3, bf16 or tensor cores <= 2e-2), and each chosen id
# the reference's argmax or a near-tie within the tolerance. A row beyond
# that at a routing near-tie (in the reference, at that token or the one
# before, a router's k-th and (k+1)-th logits within a quarter of the
# tolerance of each other, relative to its largest) is a routing swap:
# rounding may pick the other expert, and the rest of that run follows
# another valid trajectory. Where a run leaves the reference (a row beyond
# the tolerance, or such a swap), the check looks for the swap that explains
# it: the reference rerun with one router's choice at that token swapped
# (jamba-interpret --swap-routing, at a routing margin within the
# tolerance) must match the run from there on; a swap found is reported and
# the rest of the run compared with it, and none found leaves the row as it
# was (a failure, or a swap not compared past).
# Benchmarks: the device copy bandwidth and the cuBLAS bf16 GEMM rate
# (jamba-bench-cuda, the ceilings);
# jamba-small's decode at batch 1, 8 and 32 and prefill of 1024 tokens, and
# the same for a jamba-1.5-mini-shaped two-layer stack at real widths
# (decode at batch 1, 8, 32, prefill of 8192 tokens), built twice (CUDA
# cores with cuBLAS for every dense linear, and jamba-compile's CUDA
# defaults: tensor cores, decode's dense linears on the GEMV kernel), as jamba-run reports
# them; decode's steady rate (the 31 steps after the first, which captures
# the CUDA graph) and its achieved rate (the bytes a step must read: the
# non-expert weights and the experts the batch is expected to route to, per
# step time) as a fraction of the copy bandwidth. Kernel rows: profiled runs of
# the mini stack (jamba-run --profile-kernels: GPU time per op from CUDA
# events) give the int8 expert GEMM's GB/s at decode batch 1, 8, 32, 64 (and
# its time per expert matrix next to cuBLAS bf16 on the same shape: the
# dense MLP layer's gate projection, B x 14336 x 4096) and the selective
# scan's at an 8192-token prefill, against the copy bandwidth, with each
# run's top ops (on the GPU machine each profile's whole text goes back in
# profiles.tgz).
set -uo pipefail
quick=0
dry=0
mode=all
bundle=
results=
arch_wanted=sm_90
usage() {
  echo "gpu-check: $1 (see the head of scripts/gpu-check.sh)" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) quick=1 ;;
  --cpu-dry-run) dry=1 ;;
  --bundle)
    mode=bundle
    bundle=${2:-}
    shift
    ;;
  --from-bundle)
    mode=from-bundle
    bundle=${2:-}
    shift
    ;;
  --results)
    results=${2:-}
    shift
    ;;
  --compare)
    mode=compare
    bundle=${2:-}
    results=${3:-}
    shift 2
    ;;
  --arch)
    arch_wanted=${2:-}
    shift
    ;;
  *) usage "unknown option '$1' (--quick, --cpu-dry-run, --bundle DIR, --from-bundle DIR --results RES, --compare DIR RES, --arch sm_NN)" ;;
  esac
  shift
done
case "$mode" in
bundle) [ -n "$bundle" ] || usage "--bundle needs a directory" ;;
from-bundle)
  [ -n "$bundle" ] && [ -n "$results" ] || usage "--from-bundle needs DIR and --results RES"
  # The packed bundle (DIR.tgz, as --bundle writes it) is unpacked beside
  # itself.
  if [ -f "$bundle" ] && [[ "$bundle" == *.tgz ]]; then
    tar -xzf "$bundle" -C "$(dirname "$bundle")" || usage "$bundle did not unpack"
    bundle=${bundle%.tgz}
  fi
  [ -f "$bundle/bundle.env" ] || usage "$bundle is not a bundle (no bundle.env)"
  ;;
compare)
  [ -n "$bundle" ] && [ -n "$results" ] || usage "--compare needs DIR and RES"
  [ -f "$bundle/bundle.env" ] || usage "$bundle is not a bundle (no bundle.env)"
  [ -f "$results/rows.txt" ] || usage "$results has no rows.txt"
  ;;
esac
[[ "$arch_wanted" =~ ^sm_[0-9]+a?$ ]] || usage "--arch expects sm_NN, got '$arch_wanted'"
if [ "$mode" = from-bundle ] || [ "$mode" = compare ]; then
  # The bundle decides: its arch, and whether it is a dry run or quick.
  bundle=$(cd "$bundle" && pwd)
  # shellcheck disable=SC1091
  source "$bundle/bundle.env"
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# check_run: the comparisons with the reference.
# shellcheck source=scripts/compare-runs.sh
source "$root/scripts/compare-runs.sh"
if [ "$mode" = from-bundle ]; then
  # No toolchain here: the bundle's tools, and those of its libraries that
  # this system lacks (Open MPI's, usually; its own libz and the like stay
  # in use).
  bin="$bundle/bin"
  work="${JAMBA_GPU_CHECK_DIR:-/tmp/jamba-gpu-check}"
  rm -rf "$work/lib"
  mkdir -p "$work/lib"
  for f in "$bundle"/lib/*; do
    [ -e "$f" ] || continue
    ldconfig -p 2>/dev/null | grep -q "^[[:space:]]*$(basename "$f") " || ln -s "$f" "$work/lib/"
  done
  export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # cuBLAS: the CUDA toolkit's, or the one a Python wheel ships.
  if ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.1[23] '; then
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
      $(python3 -c 'import nvidia, os; print(" ".join(os.path.join(p, "cu13", "lib") + " " + os.path.join(p, "cublas", "lib") for p in nvidia.__path__))' 2>/dev/null); do
      if ls "$d"/libcublas.so.1[23]* >/dev/null 2>&1; then
        export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
        break
      fi
    done
  fi
  models="$bundle/models"
else
  JAMBA_TARGETS="jamba-make-checkpoint jamba-compile jamba-run jamba-interpret \
jamba-compare-logits jamba-bench-cuda jamba-bench-sampling jamba-quantize jamba-rebind" \
    source "$root/scripts/setup.sh"
  set +e
  bin="$JAMBA_BUILD_DIR/bin"
  models="$root/../shared/models"
  [ -f "$models/jamba-tiny.json" ] || models="$root/examples/models"
  work="${JAMBA_GPU_CHECK_DIR:-$JAMBA_BUILD_DIR/gpu-check}"
fi
set +e
mkdir -p "$work"
rows=()
status=0

# Appends a row ("kind | what | result | detail"); on the GPU machine also
# to RES/rows.txt at once, so that a run cut short still reports.
row() {
  local r=${1//$'\n'/; } # One line per row, whatever a tool printed.
  rows+=("$r")
  [ "$mode" = from-bundle ] && printf '%s\n' "$r" >>"$results/rows.txt"
}

print_table() { # rows on stdin, fields separated by '|'
  awk -F'|' '{ n = NR; for (i = 1; i <= NF; ++i) { gsub(/^ +| +$/, "", $i)
                 cell[n, i] = $i; if (length($i) > w[i]) w[i] = length($i) }
               if (NF > nf) nf = NF }
    END { for (r = 1; r <= n; ++r) { line = ""
            for (i = 1; i <= nf; ++i)
              line = line (i < nf ? sprintf("%-" w[i] "s  ", cell[r, i]) : cell[r, i])
            print line } }'
}

prompts=(
  "1,17,42,5,9,100,3,77,12,64,31,8,90,2,55,21,4,6,88,13,7,99,42,18,3,61,25,11,70,5,39,14"
  "4,8,15,16,23,42,7,1,99,3,27"
  "9,2"
)

# The variants: model dtype int8(0|1) tensor-cores(0|1). Tensor cores
# (jamba-compile --gpu-tensor-cores --gpu-expert-grouped-rows 0: every
# expert GEMM, decode too, on the mma.sync kernel, and every attention
# call on the tensor-core flash attention) apply to int8 or bf16
# experts: jamba-tiny bf16, bf16 +int8 and f32 +int8; jamba-small bf16
# +int8, which runs batch 1 only (the device's results are limited to 64
# MiB, and the four other jamba-small variants take 56 MB).
variants=()
models_to_check=(jamba-tiny)
[ $quick = 1 ] || models_to_check+=(jamba-small)
for model in "${models_to_check[@]}"; do
  for dtype in f32 bf16; do
    for q in 0 1; do
      variants+=("$model $dtype $q 0")
    done
  done
done
variants+=("jamba-tiny bf16 0 1" "jamba-tiny bf16 1 1" "jamba-tiny f32 1 1")
# jamba-compile's flags for the tensor-core variants.
tc_flags=(--gpu-tensor-cores --gpu-expert-grouped-rows 0)
# The mini stack is benchmarked twice in one run: built as before
# 2026-11-30 (CUDA cores, every dense linear on cuBLAS) and with
# jamba-compile's CUDA defaults (tensor cores; decode's rows on the GEMV
# kernels).
# The CUDA-cores build also keeps the chunked scan (its two passes over
# each chunk and the carry between them), where the defaults' 8192
# channels x 8 lanes take the one-pass lane form: the prefill's scan row
# compares the two forms in one run. It reads the logits back and chooses
# on the host, as the runtime did until 2026-12-01 (no greedy ids).
mini_base_flags=()
[ $dry = 1 ] || mini_base_flags=(--gpu-tensor-cores=false --gpu-gemv-rows 0 --gpu-scan-lane-threads 1073741824 --greedy-ids=false)
# (A dry run emulates the tensor cores on the CPU, too slowly for
# jamba-small's widths.)
[ $quick = 1 ] || [ $dry = 1 ] || variants+=("jamba-small bf16 1 1")
variant_id() { echo "$1-$2-q$3$([ "${4:-0}" = 1 ] && echo "-tc")"; }
variant_name() {
  echo "$1 $2$([ "$3" = 1 ] && echo " +int8")$([ "${4:-0}" = 1 ] && echo " +tensor cores")"
}
# Whether variant "$@" comes back with its batch-1 run only.
batch1_only() { [ "$1" = jamba-small ] && [ "${4:-0}" = 1 ]; }

# The device's arch and copy bandwidth (the ceiling), and the cuBLAS rate.
probe_device() {
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
  [ $dry = 1 ] && copy_gbs=
  [ -n "$arch" ] || { echo "gpu-check: cannot read the device's arch" >&2; exit 1; }
  row "ceiling | device copy bandwidth | ${copy_gbs:-n/a} GB/s | jamba-bench-cuda, 1 GiB D2D"
  local gemm_line
  gemm_line=$(echo "$probe" | sed -n 's/^gemm: //p')
  if [ -n "$gemm_line" ]; then
    gemm_tflops=$(echo "$gemm_line" | sed -n 's/.* \([0-9.]*\) TFLOP\/s.*/\1/p')
    row "ceiling | cuBLAS bf16 GEMM rate | $gemm_tflops TFLOP/s | $gemm_line"
  fi
}

make_checkpoint() { # model dtype dir
  [ -d "$3" ] || "$bin/jamba-make-checkpoint" "$models/$1.json" "$3" --seed 5 \
    --dtype "$2" >/dev/null
}

# Runs artifact $1 on the test prompts: $2/run.{ids,npy} (batch 1, 16 new
# tokens) and $2/multi.{ids,0.npy,1.npy,2.npy} (three sequences, chunks of
# 8, 8 new tokens), and each again without recording logits,
# $2/device.ids and $2/multi-device.ids: the ids the artifact's greedy-id
# kernels chose. Fails if a run fails.
run_tests() { # artifact outdir [batch1-only]
  local art=$1 out=$2 args=() p rc=0
  mkdir -p "$out"
  rm -f "$out"/run.* "$out"/multi.* "$out"/device.* "$out"/multi-device.*
  timeout 300 "$bin/jamba-run" "$art" --device "$device" --prompt-ids "${prompts[0]}" -n 16 \
    --ignore-eos --logits-out "$out/run.npy" >"$out/run.ids" 2>"$out/run.log" || rc=1
  timeout 300 "$bin/jamba-run" "$art" --device "$device" --prompt-ids "${prompts[0]}" -n 16 \
    --ignore-eos >"$out/device.ids" 2>"$out/device.log" || rc=1
  [ "${3:-0}" = 1 ] && return $rc
  for p in "${prompts[@]}"; do args+=(--prompt-ids "$p"); done
  timeout 300 "$bin/jamba-run" "$art" --device "$device" "${args[@]}" -n 8 --seq 8 --ignore-eos \
    --logits-out "$out/multi.npy" >"$out/multi.ids" 2>>"$out/run.log" || rc=1
  timeout 300 "$bin/jamba-run" "$art" --device "$device" "${args[@]}" -n 8 --seq 8 --ignore-eos \
    >"$out/multi-device.ids" 2>"$out/multi-device.log" || rc=1
  return $rc
}

# The reference interpreter on checkpoint $1, fed what the runs in $2 were
# fed: each prompt and the ids the run chose (teacher forcing), so that
# every row of the run's logits has its reference, also after a near-tie
# went the other way. Writes $3/ref.npy (batch 1) and $3/ref.{0,1,2}.npy.
# $4: the interpreter's --gemm-inputs (bf16 where the run's GEMMs rounded
# their inputs to bf16, as cuBLAS does with bf16 weights); $5 its
# --expert-inputs (bf16 where the tensor-core expert GEMM rounded them).
# Without $2/multi.ids (a batch-1-only variant) only ref.npy.
run_refs() { # checkpoint rundir outdir gemm-inputs expert-inputs
  local ref=$1 run=$2 out=$3 inputs=$4 experts=$5 i
  mkdir -p "$out"
  # How the references were computed, for verify_swaps.
  printf '%s\n' "$ref" "$inputs" "$experts" >"$out/interpret.args"
  "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[0]},$(cat "$run/run.ids")" -n 0 \
    --gemm-inputs "$inputs" --expert-inputs "$experts" --logits-out "$out/ref.npy" \
    --routing-margins-out "$out/margins.npy" >/dev/null || return 1
  [ -f "$run/multi.ids" ] || return 0
  for i in 0 1 2; do
    "$bin/jamba-interpret" "$ref" --prompt-ids "${prompts[$i]},$(sed -n "$((i + 1))p" "$run/multi.ids")" \
      -n 0 --gemm-inputs "$inputs" --expert-inputs "$experts" --logits-out "$out/ref.$i.npy" \
      --routing-margins-out "$out/margins.$i.npy" >/dev/null || return 1
  done
}

# One row: a run's logits ($2.npy) against the reference ($3.npy, margins
# $4.npy), ids $5 chosen after prompt $6, tolerance $7 (check_run, in
# scripts/compare-runs.sh: routing swaps looked for and verified).
compare_run() { # label run reference margins ids prompt tolerance
  local cmpout rc
  cmpout=$(check_run "$2" "$3" "$4" "$5" "$6" "$7")
  rc=$?
  [ $rc -eq 0 ] || status=1
  row "test | $1 | $([ $rc -eq 0 ] && echo ok || echo FAILED) | $cmpout"
}

# A row: the ids of run $2 (no logits recorded: $2.log says how many of
# its calls returned the artifact's greedy ids) against those of run $3,
# chosen by the host from the logits it recorded. Passes when they are the
# same and every call returned ids.
compare_device_ids() { # label device-run logits-run
  local calls n m
  calls=$(grep -o 'the artifact chose the greedy ids: [0-9]* of [0-9]* calls' "$2.log" |
    sed 's/the artifact chose the greedy ids: //')
  n=${calls%% of *}
  m=${calls#* of }
  m=${m%% calls}
  if cmp -s "$2.ids" "$3.ids" && [ -n "$calls" ] && [ "$n" = "$m" ]; then
    row "test | $1 | ok | the same $(tr ',\n' '  ' <"$3.ids" | wc -w | tr -d ' ') ids, $calls returning ids"
  else
    status=1
    row "test | $1 | FAILED | $(tr '\n' ' ' <"$2.ids")vs $(tr '\n' ' ' <"$3.ids")(${calls:-no} calls returning ids)"
  fi
}

# The rows comparing the runs in $3 with the references in $4.
compare_tests() { # name tolerance rundir refdir
  local name=$1 tol=$2 out=$3 ref=$4 i
  compare_run "$name batch 1" "$out/run" "$ref/ref" "$ref/margins" "$(cat "$out/run.ids")" \
    "${prompts[0]}" "$tol"
  # The greedy ids the artifact chose (no logits read back) against the
  # host's argmax of the logits the recorded runs read.
  [ -f "$out/device.ids" ] && compare_device_ids "$name greedy ids chosen by the artifact" \
    "$out/device" "$out/run"
  [ -f "$out/multi-device.ids" ] && compare_device_ids \
    "$name 3 sequences, greedy ids chosen by the artifact" "$out/multi-device" "$out/multi"
  if [ ! -f "$out/multi.ids" ]; then
    row "test | $name 3 sequences | skipped | batch 1 only (the results' size limit)"
    return
  fi
  for i in 0 1 2; do
    compare_run "$name seq $i of 3" "$out/multi.$i" "$ref/ref.$i" "$ref/margins.$i" \
      "$(sed -n "$((i + 1))p" "$out/multi.ids")" "${prompts[$i]}" "$tol"
  done
}

# The reference's GEMM inputs for variant dtype $1: bf16 on a GPU with bf16
# weights (the cuBLAS GEMMs round their inputs), exact otherwise (the CPU
# artifacts of a dry run multiply f32 activations).
gemm_inputs() { [ "$1" = bf16 ] && [ $dry = 0 ] && echo bf16 || echo f32; }
# The reference's expert GEMM inputs for variant "$@": bf16 with tensor
# cores (the mma.sync kernel multiplies bf16 operands, also emulated).
expert_inputs() { [ "${4:-0}" = 1 ] && echo bf16 || echo f32; }

# The logits' tolerance for variant "$@": bf16's with bf16 weights or
# tensor cores (the attention's queries, keys, values and softmax weights
# rounded to bf16, which the reference does not do), f32's otherwise.
tolerance() { { [ "$2" = bf16 ] || [ "${4:-0}" = 1 ]; } && echo 2e-2 || echo 1e-3; }

# Compiles variant "$@" into $art (for $target); the reference checkpoint in
# $ref. Returns non-zero (with a row) if compilation fails.
compile_variant() { # model dtype q tc
  local model=$1 dtype=$2 q=$3 tc=${4:-0} id
  id=$(variant_id "$@")
  local ckpt="$work/$model-$dtype"
  art="$work/$id.art"
  ref="$ckpt"
  # The greedy ids are the CUDA default; the dry run's CPU artifacts ask.
  local flags=(--target "$target" --force --greedy-ids)
  [ $dry = 1 ] || [ "$mode" != bundle ] || flags+=(--gpu-format cubin)
  make_checkpoint "$model" "$dtype" "$ckpt"
  if [ "$q" = 1 ]; then
    flags+=(--experts-int8)
    ref="$ckpt-q8"
    [ -d "$ref" ] || "$bin/jamba-quantize" "$ckpt" "$ref" >/dev/null
  fi
  if [ "$tc" = 1 ]; then
    # A dry run emulates the tensor cores' mma.sync in the GPU kernels on
    # the CPU.
    flags+=("${tc_flags[@]}")
    [ $dry = 0 ] || flags+=(--cpu-with-gpu-kernels)
  elif [ "$target" != cpu ]; then
    # Tensor cores are jamba-compile's CUDA default.
    flags+=(--gpu-tensor-cores=false)
  fi
  # jamba-small's prompts run the scan's one-pass lane form (its 2048
  # channels x 8 lanes would take the chunked form), jamba-tiny's the
  # chunked form: both are compared with the reference.
  [ "$model" != jamba-small ] || [ "$target" = cpu ] || flags+=(--gpu-scan-lane-threads 0)
  # Every prompt position's logits: the runs are compared row by row.
  if ! "$bin/jamba-compile" "$ckpt" -o "$art" --prefill-logits all "${flags[@]}" \
      >"$work/compile.log" 2>&1; then
    row "test | $(variant_name "$@") compile | FAILED | $(tail -1 "$work/compile.log")"
    status=1
    return 1
  fi
}

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
  local label=$1 art=$2 batch=$3 split out tps all first
  split=$(weight_split "$art") || split=
  out=$(timeout 300 "$bin/jamba-run" "$art" --device "$device" --prompt-ids 1,2,3 --batch "$batch" \
    -n 32 --ignore-eos 2>&1 >/dev/null | grep "decode")
  # The steady rate: the calls after the first (which captures the CUDA
  # graph and makes the decode kernels' first launches).
  all=$(echo "$out" | sed -n 's/.*decode [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p')
  first=$(echo "$out" | sed -n 's/.*decode: the first call \([0-9.]*\) ms, .*/\1/p')
  tps=$(echo "$out" | sed -n 's/.*decode: the first call .* (\([0-9.]*\) tok\/s).*/\1/p')
  [ -n "$tps" ] || tps=$all
  if [ -z "$tps" ]; then
    row "bench | $label decode batch $batch | FAILED | $out"
    status=1
  elif [ -n "$copy_gbs" ] && [ -n "$split" ]; then
    row "bench | $label decode batch $batch | $tps tok/s | ${first:+the first call $first ms, all 32 steps $all tok/s; }$(echo "$split" | awk \
      -v t="$tps" -v b="$batch" -v c="$copy_gbs" '{
        e = $3; k = $4; touched = e * (1 - (1 - k / e) ^ b);
        bytes = $2 + $1 * touched / e; step = b / t;
        printf "%.1f%% of the copy bandwidth (%.1f GB/s: %.2f GB per step, %.1f of %d experts)",
          100 * bytes / step / 1e9 / c, bytes / step / 1e9, bytes / 1e9, touched, e }')"
  else
    row "bench | $label decode batch $batch | $tps tok/s | no ceiling measured"
  fi
}

bench_prefill() { # label artifact tokens seq
  local label=$1 art=$2 tokens=$3 seq=$4 out tps
  # Ids 1..1000 repeated: inside every vocabulary here.
  local ids
  ids=$(seq 0 $((tokens - 1)) | awk '{ printf "%s%d", (NR > 1 ? "," : ""), $1 % 1000 + 1 }')
  # Every module loaded when the process starts (CUDA_MODULE_LOADING=EAGER):
  # with CUDA's default lazy loading, cuBLAS's kernels loaded at their first
  # calls inside the timed prefill (the profiled 2026-11-30 run gave
  # in_proj's GEMM 21.6 ms per call, where the MLP's of the same size took
  # 0.65 ms). Prefill figures before 2026-12-01 include that loading.
  out=$(CUDA_MODULE_LOADING=EAGER timeout 300 "$bin/jamba-run" "$art" --device "$device" --prompt-ids "$ids" \
    --seq "$seq" -n 1 --ignore-eos 2>&1 >/dev/null | grep "prefill")
  tps=$(echo "$out" | sed -n 's/.*prefill [0-9]* tokens in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p')
  [ -n "$tps" ] || status=1
  row "bench | $label prefill $tokens tokens | ${tps:-FAILED} tok/s | ${out:-no output}"
}

# Per-op GPU time of a profiled run (jamba-run --profile-kernels):
# "MS LAUNCHES" summed over the ops whose names start with "$2" ("decode
# expert_gemm": the lane form's and the grouped form's kernels) in the
# profile text $1, or nothing; $3, if given, names the op whose launches
# are reported instead of the sum of all launches.
# Rows for a decode step's small kernels at batch 1 (profile $2): the
# RMSNorms' GPU time per norm (one rms_norm or rms_norm_warp kernel per
# norm; the three-kernel form of before 2026-11-30 evening counted by its
# squares), and the KV cache append's per launch.
step_kernel_rows() { # label profile-text
  local ms launches norms=0 kind
  read -r ms launches <<<"$(profile_op "$2" "decode rms_norm")"
  for kind in rms_norm rms_norm_warp rms_norm_squares; do
    norms=$((norms + $(profile_op "$2" "decode $kind" "decode $kind" | awk '{ n = $2 } END { print n + 0 }')))
  done
  if [ -n "$ms" ] && [ "$norms" -gt 0 ]; then
    row "kernel | $1 decode batch 1 RMSNorm | $(awk -v ms="$ms" -v n="$norms" -v l="$launches" \
      'BEGIN { printf "%.1f us per norm (%d norms, %d launches)", 1e3 * ms / n, n, l }') | GPU time per op"
  fi
  read -r ms launches <<<"$(profile_op "$2" "decode cache_append")"
  if [ -n "$ms" ] && [ "${launches:-0}" -gt 0 ]; then
    row "kernel | $1 decode batch 1 KV cache append | $(awk -v ms="$ms" -v n="$launches" \
      'BEGIN { printf "%.1f us per launch (%d launches)", 1e3 * ms / n, n }') | GPU time per op"
  fi
}

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

# On the GPU machine, a profiled run's whole text goes back with the
# results (profiles.tgz: profiles/LABEL.txt), for the ops the table does
# not name.
# One archive (the device's results come back as few files).
keep_profile() { # label profile-text
  [ "$mode" = from-bundle ] || return 0
  mkdir -p "$work/profiles"
  printf '%s\n' "$2" >"$work/profiles/$(echo "$1" | tr -c 'A-Za-z0-9.\n-' '_').txt"
  tar -czf "$results/profiles.tgz" -C "$work" profiles
}

# Kernel benchmarks from profiled runs of the mini stack (GPU time per op,
# CUDA events; decode without graphs). Decode at batch B: the expert GEMM
# (its lanes and epilogue kernels) reads the routed experts' int8 weights,
# E (1 - (1 - k/E)^B) of E experts per projection, three projections per
# step; achieved GB/s against the copy bandwidth. Prefill: the selective
# scan reads delta, u and z and writes y (f32, T x D each: 16 T D bytes;
# B and C are small), against the copy bandwidth (target: 60%); the
# attention layer's attention (the split form's two kernels, or the tensor
# cores' one): 4 hd FLOPs per (head, query, key it sees), 8192 x 8193 / 2
# causal pairs, against the cuBLAS bf16 rate.
bench_profile() { # label artifact config.json
  local label=$1 art=$2 config=$3 split prof ms launches hidden ffn vocab
  split=$(weight_split "$art") || split=
  read -r hidden ffn vocab <<<"$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))
print(c["hidden_size"], c["intermediate_size"], c["vocab_size"])' "$config")"
  # Batch 64 too: the issue's int8-against-cuBLAS target is batch <= 64.
  for batch in 1 8 32 64; do
    prof=$(timeout 300 "$bin/jamba-run" "$art" --device "$device" --prompt-ids 1,2,3 --batch "$batch" \
      -n 17 --ignore-eos --profile-kernels 2>&1 >/dev/null)
    keep_profile "$label decode batch $batch" "$prof"
    # All the expert GEMM's kernels; one epilogue (lane form, fewer than
    # 32 lanes), one warps kernel (lane form, 32), one grouped kernel or one
    # tensor-core kernel per GEMM.
    local gemms=0 kernel
    read -r ms _ <<<"$(profile_op "$prof" "decode expert_gemm")"
    for kernel in epilogue warps grouped mma; do
      gemms=$((gemms + $(profile_op "$prof" "decode expert_gemm_$kernel" | awk '{ n = $2 } END { print n + 0 }')))
    done
    launches=$gemms
    if [ -z "$ms" ] || [ -z "$split" ] || [ "$gemms" -eq 0 ]; then
      row "kernel | $label decode batch $batch expert GEMM | FAILED | $(echo "$prof" | tail -1)"
      status=1
      continue
    fi
    # The dense MLP layer's gate projection: cuBLAS bf16 on one matrix of
    # the experts' shape, for the batch's rows.
    local cublas_us
    read -r cublas_us _ <<<"$(profile_kernel "$prof" "cublas_gemm_bf16 ${batch}x${ffn}x${hidden}")"
    row "kernel | $label decode batch $batch expert GEMM | $(echo "$split" | awk \
      -v ms="$ms" -v n="$launches" -v b="$batch" -v c="$copy_gbs" \
      -v cub="${cublas_us:-}" '{
        e = $3; k = $4; touched = e * (1 - (1 - k / e) ^ b);
        bytes = $1 * touched / e / 3; us = 1e3 * ms / n;
        printf "%.1f us per GEMM (%.1f GB/s, %.1f%% of the copy bandwidth; %.0f MB of int8 experts)",
          us, bytes / us / 1e3, 100 * bytes / us / 1e3 / c, bytes / 1e6
        if (cub != "")
          printf "; %.1f us per expert matrix vs cuBLAS bf16 %.1f us on the same shape (%.2fx)",
            us / touched, cub, cub / (us / touched) }') | $(profile_top "$prof" 5)"
    # The greedy ids (--greedy-ids, the CUDA default): the two argmax
    # kernels per step read the step's logits once (batch x vocab f32).
    read -r ms launches <<<"$(profile_op "$prof" "decode argmax")"
    if [ -n "$ms" ] && [ "${launches:-0}" -gt 0 ]; then
      row "kernel | $label decode batch $batch greedy ids | $(awk -v ms="$ms" -v n="$launches" \
        -v b="$batch" -v v="$vocab" -v c="$copy_gbs" 'BEGIN { us = 1e3 * ms / (n / 2);
          gbs = 4 * b * v / us / 1e3
          printf "%.1f us per step in two kernels (%.1f GB/s over the logits", us, gbs
          if (c != "") printf ", %.1f%% of the copy bandwidth", 100 * gbs / c
          printf ")" }') | GPU time per op; the host read $((4 * batch)) bytes per step instead of $((4 * batch * vocab))"
    fi
    [ "$batch" = 1 ] && step_kernel_rows "$label" "$prof"
  done
  # Modules loaded eagerly, as in bench_prefill.
  prof=$(CUDA_MODULE_LOADING=EAGER timeout 300 "$bin/jamba-run" "$art" --device "$device" --prompt-ids "$(seq 0 8191 | awk \
    '{ printf "%s%d", (NR > 1 ? "," : ""), $1 % 1000 + 1 }')" --seq 4096 -n 1 --ignore-eos \
    --profile-kernels 2>&1 >/dev/null)
  keep_profile "$label prefill 8192" "$prof"
  # The scan's kernels: its chunks from zero, the carry, the chunks again.
  read -r ms launches <<<"$(profile_op "$prof" "prefill selective_scan" "prefill selective_scan")"
  if [ -z "$ms" ]; then
    row "kernel | $label prefill 8192 selective scan | FAILED | $(echo "$prof" | tail -1)"
    status=1
  else
    local d
    d=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["mamba_expand"]*c["hidden_size"])' "$config")
    row "kernel | $label prefill 8192 selective scan | $(awk -v ms="$ms" -v n="$launches" \
      -v d="$d" -v c="$copy_gbs" 'BEGIN { bytes = 16 * 8192 * d; gbs = bytes / (ms / 1e3) / 1e9;
        printf "%.2f ms in %d launches (%.1f GB/s, %.1f%% of the copy bandwidth)", ms, n, gbs, 100 * gbs / c }') | $(profile_top "$prof" 6)"
  fi
  read -r ms launches <<<"$(profile_op "$prof" "prefill attention")"
  if [ -z "$ms" ]; then
    row "kernel | $label prefill 8192 attention | FAILED | $(echo "$prof" | tail -1)"
    status=1
  else
    local heads hd
    read -r heads hd <<<"$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))
print(c["num_attention_heads"], c["hidden_size"] // c["num_attention_heads"])' "$config")"
    row "kernel | $label prefill 8192 attention | $(awk -v ms="$ms" -v n="$launches" \
      -v h="$heads" -v hd="$hd" -v peak="${gemm_tflops:-}" 'BEGIN {
        flops = 4 * hd * h * 8192 * 8193 / 2; tf = flops / (ms / 1e3) / 1e12;
        printf "%.2f ms in %d launches (%.1f TFLOP/s", ms, n, tf
        if (peak != "") printf ", %.1f%% of the cuBLAS bf16 rate", 100 * tf / peak
        printf ")" }') | $(profile_top "$prof" 6)"
  fi
  # The routed experts' GEMMs (tensor cores, or the CUDA-core grouped form):
  # 2 hidden ffn FLOPs per (token, routed expert, projection), three
  # projections per expert layer, against the cuBLAS bf16 rate; the rest of
  # the expert GEMM's kernels (the counting sort) beside them.
  local gemm_ms all_ms kernel_name flops
  for kernel_name in mma grouped; do
    read -r gemm_ms launches <<<"$(profile_op "$prof" "prefill expert_gemm_$kernel_name")"
    [ -n "$gemm_ms" ] && break
  done
  read -r all_ms _ <<<"$(profile_op "$prof" "prefill expert_gemm")"
  flops=$(python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))
period, offset = c.get("expert_layer_period", 1), c.get("expert_layer_offset", 0)
moe = sum(1 for i in range(c["num_hidden_layers"]) if c.get("num_experts", 1) > 1 and i % period == offset)
print(8192 * moe * c.get("num_experts_per_tok", 1) * 3 * 2 * c["hidden_size"] * c["intermediate_size"])' "$config")
  if [ -z "$gemm_ms" ] || [ "$flops" = 0 ]; then
    row "kernel | $label prefill 8192 expert GEMM | FAILED | $(echo "$prof" | tail -1)"
    status=1
  else
    row "kernel | $label prefill 8192 expert GEMM | $(awk -v ms="$gemm_ms" -v n="$launches" \
      -v all="$all_ms" -v f="$flops" -v k="expert_gemm_$kernel_name" -v peak="${gemm_tflops:-}" 'BEGIN {
        tf = f / (ms / 1e3) / 1e12
        printf "%s %.2f ms in %d launches (%.1f TFLOP/s", k, ms, n, tf
        if (peak != "") printf ", %.1f%% of the cuBLAS bf16 rate", 100 * tf / peak
        printf "); the other expert GEMM kernels (sort) %.2f ms", all - ms }') | $(profile_top "$prof" 6)"
  fi
}

# The jamba-1.5-mini-shaped layer stack at real widths (hidden 4096, 16
# experts of 14336, vocab 65536), random bf16 weights, ExpertsInt8: two
# layers, a Mamba layer with the dense MLP and an attention layer with the
# MoE. The dry run scales the widths down (the plumbing only).
write_mini_config() { # out.json
  python3 - "$models/jamba-1.5-mini.json" "$1" "$dry" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config.update(num_hidden_layers=2, attn_layer_period=2, attn_layer_offset=1,
              expert_layer_period=2, expert_layer_offset=1)
if sys.argv[3] == "1":
    config.update(hidden_size=256, intermediate_size=512, vocab_size=1024,
                  mamba_dt_rank=16, num_attention_heads=8, num_key_value_heads=2)
json.dump(config, open(sys.argv[2], "w"), indent=2)
PY
}

# The host's share of a decode step on this machine: choosing the next ids
# from Jamba's 65536 logits per row (jamba-bench-sampling), greedy and at
# temperature 1, at batch 1 and 32, next to a memcpy of the logits.
host_rows() {
  local out
  if [ ! -x "$bin/jamba-bench-sampling" ]; then
    row "host | choosing the next ids | skipped | no jamba-bench-sampling in $bin"
    return
  fi
  if ! out=$(timeout 120 "$bin/jamba-bench-sampling" 2>&1); then
    row "host | choosing the next ids | FAILED | $(echo "$out" | tail -1)"
    status=1
    return
  fi
  row "host | choosing the next ids (vocab 65536) | $(echo "$out" | awk '
    /^batch +(1|32):/ {
      b = $2; sub(":", "", b)
      for (i = 1; i <= NF; ++i) {
        if ($i == "logits") copy = $(i + 1)
        if ($i == "greedy") greedy = $(i + 1)
        if ($i == "temperature") temp = $(i + 2)
      }
      printf "%sbatch %s: greedy %s us, temperature 1 %.2f ms, memcpy of the logits %s us", (n++ ? "; " : ""), b, greedy, temp / 1e3, copy
    }') | jamba-bench-sampling (per decode step, host only)"
}

# The benchmarks on jamba-small (bf16 + ExpertsInt8, the serving
# configuration: artifact $1) and the mini stack (artifact $2, config $3).
run_benchmarks() { # small-artifact mini-artifact mini-config [mini-defaults-artifact]
  local batch
  host_rows
  for batch in 1 8 32; do
    bench_decode jamba-small "$1" "$batch"
  done
  bench_prefill jamba-small "$1" 1024 1024
  if [ -z "$2" ]; then
    return
  fi
  for batch in 1 8 32; do
    bench_decode "jamba-1.5-mini stack (2 layers), CUDA cores + cuBLAS" "$2" "$batch"
  done
  bench_prefill "jamba-1.5-mini stack (2 layers), CUDA cores + cuBLAS" "$2" 8192 4096
  if [ $dry = 0 ]; then
    bench_profile "jamba-1.5-mini stack, CUDA cores + cuBLAS" "$2" "$3"
  else
    row "kernel | per-kernel GPU times | skipped | --profile-kernels needs CUDA"
  fi
  # The same stack built with jamba-compile's CUDA defaults.
  if [ -n "${4:-}" ]; then
    for batch in 1 8 32; do
      bench_decode "jamba-1.5-mini stack (2 layers), defaults" "$4" "$batch"
    done
    bench_prefill "jamba-1.5-mini stack (2 layers), defaults" "$4" 8192 4096
    bench_profile "jamba-1.5-mini stack, defaults" "$4" "$3"
  fi
}

finish() {
  echo
  echo "== gpu-check ($arch) =="
  printf '%s\n' "${rows[@]}" | print_table
  exit $status
}

case "$mode" in
all)
  probe_device
  device=cuda
  target="cuda:$arch"
  [ $dry = 1 ] && device=cpu && target=cpu
  for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    set -- $v
    compile_variant "$@" || continue
    id=$(variant_id "$@")
    if ! run_tests "$art" "$work/$id" "$(batch1_only "$@" && echo 1)"; then
      row "test | $(variant_name "$@") run | FAILED | $(tail -1 "$work/$id/run.log")"
      status=1
      continue
    fi
    run_refs "$ref" "$work/$id" "$work/$id" "$(gemm_inputs "$2")" "$(expert_inputs "$@")" ||
      { row "test | $(variant_name "$@") reference | FAILED | jamba-interpret"; status=1; continue; }
    compare_tests "$(variant_name "$@")" "$(tolerance "$@")" "$work/$id" "$work/$id"
  done
  if [ $quick = 0 ]; then
    mini="$work/jamba-mini-stack"
    write_mini_config "$mini.json"
    [ -d "$mini.ckpt" ] || "$bin/jamba-make-checkpoint" "$mini.json" "$mini.ckpt" --seed 5 --dtype bf16 >/dev/null
    if "$bin/jamba-compile" "$mini.ckpt" -o "$mini.art" --target "$target" --experts-int8 \
      "${mini_base_flags[@]}" --force >"$work/compile.log" 2>&1; then
      mini_tc=
      if [ $dry = 1 ]; then
        row "bench | jamba-1.5-mini stack, defaults | skipped | a dry run (emulated mma.sync at real widths is slow)"
      elif "$bin/jamba-compile" "$mini.ckpt" -o "$mini-tc.art" --target "$target" --experts-int8 \
        --force >"$work/compile.log" 2>&1; then
        mini_tc="$mini-tc.art"
      else
        row "bench | jamba-1.5-mini stack, defaults, compile | FAILED | $(tail -1 "$work/compile.log")"
        status=1
      fi
      run_benchmarks "$work/jamba-small-bf16-q1.art" "$mini.art" "$mini.json" "$mini_tc"
    else
      row "bench | jamba-1.5-mini stack compile | FAILED | $(tail -1 "$work/compile.log")"
      status=1
      run_benchmarks "$work/jamba-small-bf16-q1.art" "" ""
    fi
  fi
  finish
  ;;

bundle)
  rm -rf "$bundle"
  mkdir -p "$bundle/bin" "$bundle/lib" "$bundle/art" "$bundle/models"
  if [ $dry = 1 ]; then
    device=cpu
    target=cpu
  else
    device=cuda
    target="cuda:$arch_wanted"
  fi
  # Code only: the manifest, the kernels and the tokenizer; the weights are
  # remade there.
  pack_code() { # artifact name
    mkdir -p "$bundle/art/$2"
    cp "$1/manifest.json" "$bundle/art/$2/" && cp -r "$1/kernels" "$bundle/art/$2/" &&
      { [ ! -f "$1/tokenizer.json" ] || cp "$1/tokenizer.json" "$bundle/art/$2/"; }
  }
  for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    set -- $v
    id=$(variant_id "$@")
    echo "gpu-check: bundling $id"
    compile_variant "$@" || continue
    pack_code "$art" "$id"
  done
  cp "$models/jamba-tiny.json" "$bundle/models/"
  [ $quick = 1 ] || cp "$models/jamba-small.json" "$bundle/models/"
  if [ $quick = 0 ]; then
    echo "gpu-check: bundling the jamba-1.5-mini stack"
    mini="$work/jamba-mini-stack"
    write_mini_config "$bundle/models/jamba-mini-stack.json"
    cp "$bundle/models/jamba-mini-stack.json" "$mini.json"
    flags=(--target "$target" --experts-int8 --force)
    [ $dry = 1 ] || flags+=(--gpu-format cubin)
    [ -d "$mini.ckpt" ] && cmp -s "$mini.json" "$mini.ckpt.json" ||
      { rm -rf "$mini.ckpt"; "$bin/jamba-make-checkpoint" "$mini.json" "$mini.ckpt" --seed 5 --dtype bf16 >/dev/null &&
        cp "$mini.json" "$mini.ckpt.json"; }
    if "$bin/jamba-compile" "$mini.ckpt" -o "$mini.art" "${flags[@]}" "${mini_base_flags[@]}" \
      >"$work/compile.log" 2>&1; then
      pack_code "$mini.art" jamba-mini-stack
    else
      echo "gpu-check: the mini stack did not compile: $(tail -1 "$work/compile.log")" >&2
      status=1
    fi
    if [ $dry = 1 ]; then
      echo "gpu-check: a dry run bundles no mini stack with the CUDA defaults (emulated tensor cores at real widths: slow)"
    elif "$bin/jamba-compile" "$mini.ckpt" -o "$mini-tc.art" "${flags[@]}" >"$work/compile.log" 2>&1; then
      pack_code "$mini-tc.art" jamba-mini-stack-tc
    else
      echo "gpu-check: the mini stack with the CUDA defaults did not compile: $(tail -1 "$work/compile.log")" >&2
      status=1
    fi
  fi
  # The MLIR-free tools and what they link beyond the C and C++ runtimes.
  for t in jamba-run jamba-bench-cuda jamba-bench-sampling jamba-make-checkpoint jamba-rebind; do
    cp "$bin/$t" "$bundle/bin/"
    ldd "$bin/$t" | awk '$3 ~ /^\// { print $3 }' |
      grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt|ld-linux[^/]*)\.so' |
      xargs -r cp -L -t "$bundle/lib/"
  done
  if ldd "$bin/jamba-rebind" | grep -q libMLIR; then
    echo "gpu-check: jamba-rebind links MLIR; the bundle would not run without it" >&2
    status=1
  fi
  cat >"$bundle/bundle.env" <<EOF
# Written by scripts/gpu-check.sh --bundle on $(date -u +%Y-%m-%dT%H:%MZ).
bundle_arch=$([ $dry = 1 ] && echo sm_cpu || echo "$arch_wanted")
dry=$dry
quick=$quick
EOF
  # Packed too: a device call carries at most 64 MiB.
  tar -czf "$bundle.tgz" -C "$(dirname "$bundle")" "$(basename "$bundle")" || status=1
  echo "gpu-check: wrote $bundle ($(du -sh "$bundle" | cut -f1)) and $bundle.tgz ($(du -sh "$bundle.tgz" | cut -f1))"
  exit $status
  ;;

from-bundle)
  mkdir -p "$results"
  : >"$results/rows.txt"
  rm -rf "$work/profiles"
  probe_device
  if [ $dry = 1 ]; then
    device=cpu
  else
    device=cuda
    if [ "$arch" != "$bundle_arch" ]; then
      echo "gpu-check: the bundle's kernels are for $bundle_arch, this GPU is $arch" >&2
      exit 1
    fi
  fi
  # The runs' ids and logits, packed as they finish: one archive per
  # jamba-small variant (about 15 MB each), one for all of jamba-tiny.
  pack() { # archive ids...
    local archive=$1
    shift
    (cd "$work/runs" && tar -czf "$results/$archive" "$@")
  }
  tiny_done=()
  for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    set -- $v
    id=$(variant_id "$@")
    [ -d "$bundle/art/$id" ] || { row "test | $(variant_name "$@") | FAILED | not in the bundle"; status=1; continue; }
    make_checkpoint "$1" "$2" "$work/$1-$2"
    if ! "$bin/jamba-rebind" "$bundle/art/$id" "$work/$1-$2" -o "$work/$id.art" --force \
      >"$work/rebind.log" 2>&1; then
      row "test | $(variant_name "$@") rebind | FAILED | $(tail -1 "$work/rebind.log")"
      status=1
      continue
    fi
    if ! run_tests "$work/$id.art" "$work/runs/$id" "$(batch1_only "$@" && echo 1)"; then
      row "test | $(variant_name "$@") run | FAILED | $(tail -1 "$work/runs/$id/run.log")"
      echo "gpu-check: $id failed; the end of its log:"
      tail -15 "$work/runs/$id/run.log"
      status=1
    else
      row "run | $(variant_name "$@") | ran | compared by --compare"
    fi
    if [ "$1" = jamba-tiny ]; then
      tiny_done+=("$id")
      pack jamba-tiny.tgz "${tiny_done[@]}"
    elif batch1_only "$@"; then
      pack "$id.tgz" "$id/run.ids" "$id/run.npy"
    else
      pack "$id.tgz" "$id"
    fi
    # The checkpoint is not needed again (bf16 +int8 with tensor cores is
    # the last variant of jamba-small bf16).
    if [ "$1" = jamba-small ] && [ "$3" = 1 ] && { [ "$2" = f32 ] || [ "${4:-0}" = 1 ]; }; then
      rm -rf "$work/$1-$2"
    fi
  done
  if [ $quick = 0 ]; then
    small="$work/jamba-small-bf16-q1.art"
    mini_art=
    mini_tc_art=
    if [ -d "$bundle/art/jamba-mini-stack" ]; then
      mini="$work/jamba-mini-stack"
      "$bin/jamba-make-checkpoint" "$bundle/models/jamba-mini-stack.json" "$mini.ckpt" --seed 5 \
        --dtype bf16 >/dev/null
      if "$bin/jamba-rebind" "$bundle/art/jamba-mini-stack" "$mini.ckpt" -o "$mini.art" --force \
        >"$work/rebind.log" 2>&1; then
        mini_art="$mini.art"
      else
        row "bench | jamba-1.5-mini stack rebind | FAILED | $(tail -1 "$work/rebind.log")"
        status=1
      fi
      if [ -d "$bundle/art/jamba-mini-stack-tc" ]; then
        if "$bin/jamba-rebind" "$bundle/art/jamba-mini-stack-tc" "$mini.ckpt" -o "$mini-tc.art" \
          --force >"$work/rebind.log" 2>&1; then
          mini_tc_art="$mini-tc.art"
        else
          row "bench | jamba-1.5-mini stack, defaults, rebind | FAILED | $(tail -1 "$work/rebind.log")"
          status=1
        fi
      fi
      rm -rf "$mini.ckpt"
    fi
    run_benchmarks "$small" "$mini_art" "$bundle/models/jamba-mini-stack.json" "$mini_tc_art"
  fi
  finish
  ;;

compare)
  arch=$bundle_arch
  unpacked="$work/results"
  rm -rf "$unpacked"
  mkdir -p "$unpacked"
  for a in "$results"/*.tgz; do
    [ -e "$a" ] && tar -xzf "$a" -C "$unpacked"
  done
  for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    set -- $v
    id=$(variant_id "$@")
    if [ ! -f "$unpacked/$id/run.ids" ]; then
      row "test | $(variant_name "$@") | FAILED | no results from the GPU run"
      status=1
      continue
    fi
    # The reference checkpoint, as --bundle made it.
    ref="$work/$1-$2"
    make_checkpoint "$1" "$2" "$ref"
    if [ "$3" = 1 ]; then
      [ -d "$ref-q8" ] || "$bin/jamba-quantize" "$ref" "$ref-q8" >/dev/null
      ref="$ref-q8"
    fi
    run_refs "$ref" "$unpacked/$id" "$unpacked/$id.refs" "$(gemm_inputs "$2")" \
      "$(expert_inputs "$@")" ||
      { row "test | $(variant_name "$@") reference | FAILED | jamba-interpret"; status=1; continue; }
    compare_tests "$(variant_name "$@")" "$(tolerance "$@")" "$unpacked/$id" "$unpacked/$id.refs"
  done
  while IFS= read -r line; do
    case "$line" in
    run*) ;;
    *FAILED*)
      status=1
      row "$line"
      ;;
    *) row "$line" ;;
    esac
  done <"$results/rows.txt"
  finish
  ;;
esac
