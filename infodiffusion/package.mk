.PHONY: reproduce-infodiffusion bench-infodiffusion

reproduce-infodiffusion: setup  ## run the embedded default and write results/infodiffusion/
	@echo "reproduce-infodiffusion: not implemented yet" >&2; exit 1

bench-infodiffusion: setup  ## print the package's benchmarks
	@echo "bench-infodiffusion: not implemented yet" >&2; exit 1
