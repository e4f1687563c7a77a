set -u
cd /work/clones/semantic-peft
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=/tmp/sp_dev_sweep
COMMON="--data.builtin_per_relation 5 --data.builtin_seed 1 --analysis.figures true --accelerator.tracker none --num_threads 1 --save_model false --output_dir $OUT"
run() { name=$1; shift; [ -f $OUT/$name/results.json ] && return; /usr/bin/time -f "$name %e s" .venv/bin/semantic-peft train --name $name $COMMON "$@" > $OUT/$name.log 2>&1; tail -1 $OUT/$name.log; }
mkdir -p $OUT
run dev_lora
run dev_softmax_t2 --reweight.enabled true
run dev_softmax_t1 --reweight.enabled true --reweight.temperature 1.0
run dev_softmax_t4 --reweight.enabled true --reweight.temperature 4.0
run dev_linear --reweight.enabled true --reweight.scheme linear
echo done
set -u
while pgrep -f "bash /tmp/sp_sweep.sh" >/dev/null; do sleep 5; done
cd /work/clones/semantic-peft
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=/tmp/sp_dev_sweep
COMMON="--data.builtin_per_relation 5 --data.builtin_seed 1 --analysis.figures true --accelerator.tracker none --num_threads 1 --save_model false --output_dir $OUT"
run() { name=$1; shift; [ -f $OUT/$name/results.json ] && return; /usr/bin/time -f "$name %e s" .venv/bin/semantic-peft train --name $name $COMMON "$@" > $OUT/$name.log 2>&1; tail -1 $OUT/$name.log; }
for s in 1 2; do
run dev_lora_s$s --seed $s
run dev_softmax_t2_s$s --seed $s --reweight.enabled true
run dev_linear_s$s --seed $s --reweight.enabled true --reweight.scheme linear
done
echo done2
set -u
while pgrep -f "bash /tmp/sp_sweep2.sh" >/dev/null; do sleep 5; done
cd /work/clones/semantic-peft
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OUT=/tmp/sp_dev_sweep
COMMON="--data.builtin_per_relation 5 --data.builtin_seed 1 --analysis.figures true --accelerator.tracker none --num_threads 1 --save_model false --output_dir $OUT"
run() { name=$1; shift; [ -f $OUT/$name/results.json ] && return; /usr/bin/time -f "$name %e s" .venv/bin/semantic-peft train --name $name $COMMON "$@" > $OUT/$name.log 2>&1; tail -1 $OUT/$name.log; }
for s in 1 2; do
run dev_softmax_t4_s$s --seed $s --reweight.enabled true --reweight.temperature 4.0
done
echo done3
