.PHONY: reproduce-lemoe bench-lemoe

LEMOE_ENV := WANDB_MODE=$${WANDB_MODE:-offline} HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

reproduce-lemoe: setup  ## LEMoE + baselines, T=100 edits on SmolLM2 (CPU): writes results/lemoe/ and the README table
	$(REQUIRE_CLEAN)
	$(LEMOE_ENV) $(PY) -m lemoe edit --config $(if $(filter paper,$(SCALE)),lemoe/configs/paper/llama2_7b_zsre_t1000.yaml,lemoe/configs/default.yaml)

bench-lemoe: setup  ## edits/s vs FT-L and LoRA, edited/unedited latency, params and memory per expert
	$(LEMOE_ENV) $(PY) -m lemoe bench
