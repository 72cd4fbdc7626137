# The two commands a newcomer needs (both do their own set-up):
#   make demo   set up, start the local S3 server, build the demo world, open the dashboard
#   make test   set up (with test tools and Chromium) and run the whole test suite
.PHONY: demo test setup s3-stop bench

demo:
	scripts/demo.sh

test:
	scripts/test.sh

setup:
	scripts/install.sh

s3-stop:
	.venv/bin/python -m ladis_core s3 stop

bench:
	.venv/bin/python benchmarks/bench_stats.py
	.venv/bin/python benchmarks/bench_trials.py
