.PHONY: reproduce-distill-hetero reproduce-distill-hetero-cross bench-distill-hetero

# DISTILL_HETERO_ARGS: extra config overrides, e.g. DISTILL_HETERO_ARGS="--train.steps 200"
# configs shipped in distill-hetero/src/distill_hetero/configs/, named without .yaml
DISTILL_HETERO_CONFIG := $(if $(filter paper,$(SCALE)),paper/gpt2xl-gpt2base-dolly,default)

reproduce-distill-hetero: setup  ## run the embedded default and write results/distill-hetero/
	$(REQUIRE_CLEAN)
	$(PY) -m distill_hetero reproduce --config $(DISTILL_HETERO_CONFIG) --results results/distill-hetero \
		--readme distill-hetero/README.md $(DISTILL_HETERO_ARGS)

bench-distill-hetero: setup  ## print the package's benchmarks
	$(PY) -m distill_hetero bench --config default \
		--output results/distill-hetero/bench/bench.json --readme distill-hetero/README.md $(DISTILL_HETERO_ARGS)

# The cross-tokenizer part (its own results folder, compared with the main part's KD row; ~30 min)
reproduce-distill-hetero-cross: setup  ## the cross-tokenizer row -> results/distill-hetero/cross_tokenizer/
	$(REQUIRE_CLEAN)
	$(PY) -m distill_hetero reproduce --config $(DISTILL_HETERO_CONFIG) --rows kd_uld_inter --no-teacher \
		--results results/distill-hetero/cross_tokenizer --reference results/distill-hetero \
		--readme distill-hetero/README.md --section results-cross --skip-done $(DISTILL_HETERO_ARGS)
