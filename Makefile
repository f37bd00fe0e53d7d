# One interface for people and CI. `make test` is what CI runs.
.PHONY: prereqs build demo test lint bench clean

prereqs:
	bash scripts/prereqs.sh

build:
	cargo build --locked

demo: prereqs build
	bash scripts/demo.sh

test: prereqs
	cargo test --locked --all-targets

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	if command -v shellcheck >/dev/null; then shellcheck scripts/*.sh .ci/run; else echo "shellcheck not installed: skipped"; fi

bench:
	bash scripts/bench-catalog.sh

clean:
	cargo clean
	rm -rf bench-out
