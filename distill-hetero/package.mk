.PHONY: reproduce-distill-hetero bench-distill-hetero

reproduce-distill-hetero: setup  ## run the embedded default and write results/distill-hetero/
	@echo "reproduce-distill-hetero: not implemented yet" >&2; exit 1

bench-distill-hetero: setup  ## print the package's benchmarks
	@echo "bench-distill-hetero: not implemented yet" >&2; exit 1
