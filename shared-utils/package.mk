.PHONY: bench-shared-utils

bench-shared-utils: setup  ## first (GGUF de-quantisation) vs cached load of the embedded SmolLM2
	HF_HUB_OFFLINE=1 $(PY) shared-utils/benchmarks/bench_model_cache.py
