.PHONY: reproduce-lemoe bench-lemoe

reproduce-lemoe: setup  ## run the embedded default and write results/lemoe/
	@echo "reproduce-lemoe: not implemented yet" >&2; exit 1

bench-lemoe: setup  ## print the package's benchmarks
	@echo "bench-lemoe: not implemented yet" >&2; exit 1
