#!python
# The Python half of otel-run: the otel-run launcher (a shell script) runs it.
# A wheel script, not a console_scripts entry point: pip's generated launcher
# imports `re` (~7 ms here) before any of our code runs, and otel-run's own
# start-up is part of every traced command's time.
from otel_run.run._cli import launch

launch()
