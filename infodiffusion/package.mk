.PHONY: reproduce-infodiffusion bench-infodiffusion

INFODIFFUSION_ENV := WANDB_MODE=$${WANDB_MODE:-offline} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

reproduce-infodiffusion: setup  ## run the embedded default and write results/infodiffusion/
	$(INFODIFFUSION_ENV) $(PY) -m infodiffusion reproduce --config infodiffusion/configs/default.yaml \
		--results results/infodiffusion --runs runs/infodiffusion --readme infodiffusion/README.md

bench-infodiffusion: setup  ## print the package's benchmarks
	$(INFODIFFUSION_ENV) $(PY) infodiffusion/benchmarks/bench_schedules.py --config infodiffusion/configs/default.yaml
