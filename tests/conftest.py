import os
import sys
from pathlib import Path

# Tests import helpers such as warc_factory from this folder.
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
