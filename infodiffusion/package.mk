.PHONY: reproduce-infodiffusion bench-infodiffusion

INFODIFFUSION_ENV := WANDB_MODE=$${WANDB_MODE:-offline} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# SCALE=paper: the QQP setting at the paper's size (needs the DiffuSeq QQP folder, see the shipped config paper/qqp)
INFODIFFUSION_CONFIG := $(if $(filter paper,$(SCALE)),paper/qqp,default)
INFODIFFUSION_RESULTS := $(if $(filter paper,$(SCALE)),results/infodiffusion/paper,results/infodiffusion)
# the built-in rows: 5 rows x 3 seeds, training as in the default config (T = 500, 500 steps of
# batch 64: at 200 steps of batch 32 and T = 200 no row learned, BLEU ~.045), scored on 40 test
# sources with MBR over 5 candidates; SEEDS=0 (1, 2) runs one part, parts already in the results
# folder with the same settings are skipped, every call aggregates
INFODIFFUSION_BUILTIN := --data.max_eval 40 --sample.candidates 5 --eval.mbr_quality 5
reproduce-infodiffusion: SEEDS ?= 0,1,2
# PART=qqp: the QQP rows at embedded scale (config qqp_minilm, MiniLM-initialised denoiser; DiffuSeq
# and InfoDiffusion), written to results/infodiffusion/qqp/; ROWS=diffuseq (or infodiffusion) and
# SEEDS=0 run one part (< 45 min each on the shared 2-core machine), every call aggregates the parts
# there that match its settings
INFODIFFUSION_QQP := $(filter qqp,$(PART))
reproduce-infodiffusion: ROWS ?= diffuseq,infodiffusion

reproduce-infodiffusion: setup  ## run the embedded default and write results/infodiffusion/ (SCALE=paper: QQP, paper size)
	$(REQUIRE_CLEAN)
	$(if $(INFODIFFUSION_QQP),$(INFODIFFUSION_ENV) $(PY) -m infodiffusion reproduce --config qqp_minilm \
		--results results/infodiffusion/qqp --runs runs/infodiffusion/qqp --seeds $(SEEDS) --rows $(ROWS),\
	$(INFODIFFUSION_ENV) $(PY) -m infodiffusion reproduce --config $(INFODIFFUSION_CONFIG) \
		--results $(INFODIFFUSION_RESULTS) --runs runs/infodiffusion --seeds $(SEEDS) \
		$(if $(filter paper,$(SCALE)),,$(INFODIFFUSION_BUILTIN) --readme infodiffusion/README.md))

bench-infodiffusion: setup  ## print the package's benchmarks
	$(INFODIFFUSION_ENV) $(PY) infodiffusion/benchmarks/bench_schedules.py --config default
