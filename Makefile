# One interface for people and CI. `make test` is what CI runs.
.PHONY: prereqs build demo tour test lint bench schema clean

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
