.PHONY: reproduce-semantic-peft bench-semantic-peft

reproduce-semantic-peft: setup  ## run the embedded default and write results/semantic-peft/
	@echo "reproduce-semantic-peft: not implemented yet" >&2; exit 1

bench-semantic-peft: setup  ## print the package's benchmarks
	@echo "bench-semantic-peft: not implemented yet" >&2; exit 1
