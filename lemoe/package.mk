.PHONY: reproduce-lemoe bench-lemoe

LEMOE_ENV := WANDB_MODE=$${WANDB_MODE:-offline} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# the shipped config and where its results go; only this target writes the tracked results and README table
# PART=zsre_t100 | zsre_t10 | zsre_t1: the ZsRE eval sample at T = 100, 10, 1; PART=counterfact_t100: CounterFact
# (configs/<PART>.yaml), into results/lemoe/<PART>; PART=zsre_t1000 runs in parts, one method at a time
# (METHODS=lemoe, ...: the same command three times per method, lemoe.checkpoint)
LEMOE_RUN := $(if $(filter paper,$(SCALE)),--config paper/llama2_7b_zsre_t1000 --output_dir results/lemoe/paper/llama2_7b_zsre_t1000,$(if $(PART),--config $(PART) --output_dir results/lemoe/$(PART) --readme lemoe/README.md $(if $(METHODS),--methods '[$(METHODS)]'),--config default --output_dir results/lemoe --readme lemoe/README.md))

reproduce-lemoe: setup  ## LEMoE + baselines, T=100 edits on SmolLM2 (CPU): writes results/lemoe/ and the README table (PART=zsre_t100, zsre_t10, zsre_t1, counterfact_t100, zsre_t1000 with METHODS=: real data)
	$(REQUIRE_CLEAN)
	$(LEMOE_ENV) $(PY) -m lemoe edit $(LEMOE_RUN)

bench-lemoe: setup  ## edits/s of every method, per-batch cost at 1/5/25/50 batches, edited/unedited latency, memory per expert
	$(LEMOE_ENV) $(PY) -m lemoe bench --output results/lemoe/bench/bench.json --readme lemoe/README.md
