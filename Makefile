# The two commands of the README, and a few conveniences. Every target installs what is missing.
.PHONY: run test build debug tsan fuzz format check-format clean install bench

run:            ## build (release) and start the whole platform on SQLite with the relay
	scripts/run.sh

test:           ## build under ASan+UBSan and run every test (what CI runs)
	scripts/test.sh

build:          ## release build into build/release
	scripts/build.sh release

debug:
	scripts/build.sh dev

tsan:           ## run the test suite under ThreadSanitizer
	SHOPD_TEST_PRESET=tsan scripts/test.sh

fuzz:           ## build the libFuzzer targets and fuzz each for FUZZ_SECONDS (default 300)
	scripts/fuzz.sh

format:         ## reformat every C++ file in place
	git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp' | xargs clang-format -i

check-format:
	scripts/check-format.sh

bench:          ## release build, then every benchmark; the table goes to bench/results/latest.md
	scripts/bench/run.sh

PREFIX ?= /usr/local
install: build  ## install binary, systemd unit, env examples, catalogue (PREFIX=/usr/local, DESTDIR=)
	DESTDIR="$(DESTDIR)" cmake --install build/release --prefix "$(PREFIX)"

clean:
	rm -rf build
