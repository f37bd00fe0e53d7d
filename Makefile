# One interface for people and CI. `make test` is what CI runs.
.PHONY: prereqs build demo tour test lint bench fuzz schema clean

prereqs:
	bash scripts/prereqs.sh

build:
	cargo build --locked

demo: prereqs build
	./target/debug/pgdrill demo

tour: prereqs build
	bash scripts/demo.sh

test: prereqs
	cargo test --locked --all-targets

# Property-based fuzzing of the scenario and catalog parsers: a million cases each by default
# (make test runs a 2 000-case smoke of the same targets).
fuzz:
	PGDRILL_FUZZ_CASES=$${PGDRILL_FUZZ_CASES:-1000000} cargo test --locked --test fuzz

schema:
	./target/debug/pgdrill schema > scenarios/schema.json

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo test --locked --test architecture
	bin=$$(bash ci/lint-tools.sh) && \
	  "$$bin/shellcheck" scripts/*.sh kind/*.sh ci/*.sh .ci/run && \
	  "$$bin/actionlint" -shellcheck "$$bin/shellcheck" ci/github/*.yml

bench:
	bash scripts/bench-catalog.sh
	bash scripts/bench-drill.sh

clean:
	cargo clean
	rm -rf bench-out
