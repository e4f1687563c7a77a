.PHONY: reproduce-semantic-peft bench-semantic-peft

SPEFT_ROWS := $(if $(filter paper,$(SCALE)),paper/reproduce,reproduce)
SEED ?= 0
SPEFT_RESULTS := $(if $(filter paper,$(SCALE)),results/semantic-peft/paper,results/semantic-peft)

reproduce-semantic-peft: setup  ## LoRA / +filter / +reweight / +both / full FT, built-in facts, one seed (SEED=0) -> results/semantic-peft/seed_$(SEED)/, tables over all seeds (SCALE=paper: 7B)
	$(REQUIRE_CLEAN)
	TOKENIZERS_PARALLELISM=false $(PY) -m semantic_peft reproduce --rows $(SPEFT_ROWS) --results $(SPEFT_RESULTS) --seed $(SEED) \
		$(if $(filter paper,$(SCALE)),,--readme semantic-peft/README.md)

bench-semantic-peft: setup  ## step time re-weighted/plain LoRA and filtering pass vs one epoch, in one run
	TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled $(PY) semantic-peft/benchmarks/bench_speed.py
