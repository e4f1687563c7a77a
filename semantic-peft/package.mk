.PHONY: reproduce-semantic-peft tables-semantic-peft bench-semantic-peft

SPEFT_ROWS := $(if $(filter paper,$(SCALE)),paper/reproduce,reproduce)
SEED ?= 0
PART ?= core
SPEFT_RESULTS := $(if $(filter paper,$(SCALE)),results/semantic-peft/paper,results/semantic-peft)

reproduce-semantic-peft: setup  ## one part (PART=core: base + LoRA / +filter / +reweight / +both; PART=methods: full FT, IA3, prompt, prefix) of one seed (SEED=0), built-in facts -> results/semantic-peft/seed_$(SEED)/, tables over all seeds (SCALE=paper: 7B, all five rows)
	$(REQUIRE_CLEAN)
	TOKENIZERS_PARALLELISM=false $(PY) -m semantic_peft reproduce --rows $(SPEFT_ROWS) --results $(SPEFT_RESULTS) --seed $(SEED) \
		$(if $(filter paper,$(SCALE)),,--part $(PART) --readme semantic-peft/README.md)

tables-semantic-peft: setup  ## aggregate every committed part (all seed_N/ folders) into table.md, claims and the README
	TOKENIZERS_PARALLELISM=false $(PY) -m semantic_peft reproduce --table-only --results $(SPEFT_RESULTS) \
		$(if $(filter paper,$(SCALE)),,--readme semantic-peft/README.md)

bench-semantic-peft: setup  ## step time re-weighted/plain LoRA and filtering pass vs one epoch, in one run
	TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled $(PY) semantic-peft/benchmarks/bench_speed.py
