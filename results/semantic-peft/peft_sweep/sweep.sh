# Dev-split learning-rate sweep for IA3, prompt tuning and prefix tuning (issue 12 item 4).
# Dev split: 40 built-in facts drawn with builtin_seed=1 (5 per relation); the evaluation rows use
# builtin_seed=0 (25 per relation). Subjects/prompts of the two draws are disjoint (0 of 40 shared);
# the closed-vocabulary targets (profession, instrument, flag colour) necessarily recur, and the
# shipped locality probes are the same. Everything else = the default config (4 epochs, batch 16).
# Run from a clean clone: bash results/semantic-peft/peft_sweep/sweep.sh [seeds...] (default: 0)
set -u
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 WANDB_MODE=disabled HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/work/scratch/semantic-peft/peft_sweep}
COMMON="--data.builtin_per_relation 5 --data.builtin_seed 1 --analysis.figures false --accelerator.tracker none --num_threads 1 --save_model false --output_dir $OUT"
run() { name=$1; shift; [ -f $OUT/$name/results.json ] && return; /usr/bin/time -f "$name %e s" .venv/bin/semantic-peft train --name $name $COMMON "$@" > $OUT/$name.log 2>&1; tail -1 $OUT/$name.log; }
mkdir -p $OUT
GRID=${GRID:-"ia3:1e-3 ia3:4e-3 ia3:1e-2 ia3:3e-2 prompt_tuning:1e-2 prompt_tuning:3e-2 prompt_tuning:1e-1 prompt_tuning:3e-1 prefix_tuning:1e-2 prefix_tuning:3e-2 prefix_tuning:1e-1 prefix_tuning:3e-1"}
for s in ${@:-0}; do
  for item in $GRID; do
    method=${item%%:*}; lr=${item#*:}
    suffix=$([ "$s" = 0 ] && echo "" || echo "_s$s")
    run dev_${method}_lr${lr}$suffix --seed $s --peft.method $method --train.lr $lr
  done
done
echo done
