.PHONY: reproduce-infodiffusion bench-infodiffusion

INFODIFFUSION_ENV := WANDB_MODE=$${WANDB_MODE:-offline} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# SCALE=paper: the QQP setting at the paper's size (needs the DiffuSeq QQP folder, see the shipped config paper/qqp)
INFODIFFUSION_CONFIG := $(if $(filter paper,$(SCALE)),paper/qqp,default)
INFODIFFUSION_RESULTS := $(if $(filter paper,$(SCALE)),results/infodiffusion/paper,results/infodiffusion)

reproduce-infodiffusion: setup  ## run the embedded default and write results/infodiffusion/ (SCALE=paper: QQP, paper size)
	$(REQUIRE_CLEAN)
	$(INFODIFFUSION_ENV) $(PY) -m infodiffusion reproduce --config $(INFODIFFUSION_CONFIG) \
		--results $(INFODIFFUSION_RESULTS) --runs runs/infodiffusion \
		$(if $(filter paper,$(SCALE)),,--readme infodiffusion/README.md)

bench-infodiffusion: setup  ## print the package's benchmarks
	$(INFODIFFUSION_ENV) $(PY) infodiffusion/benchmarks/bench_schedules.py --config default
