"""dataplatform: web-crawl snapshots to LLM pre-training data, orchestrated as Dagster assets."""

import os as _os

__version__ = "0.2.0"

# Arrow's system allocator in every dataplatform process (a step's driver, the CLI, shard workers;
# spawned workers inherit it), unless the environment names another. Arrow's default, mimalloc,
# keeps the pages a burst of work freed: a driver's Arrow work is a burst per commit (the shard
# index, the checks), so what each stage's commit left added up over the chain. Measured on
# `dataplatform process` (benchmarks/RESULTS.md, driver fourth pass): committing a 40k-shard index
# left RSS 43 MB higher under mimalloc and 8 MB under the system allocator, and at 16x the driver
# grew 3 MB over 4x instead of 20, with lower worker peaks and no loss of speed. Read once, when
# pyarrow is first imported, so it is set here, before any of our modules imports pyarrow (a
# script that imports pyarrow before dataplatform keeps mimalloc in its own process).
_os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
