import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "build"))

from buildfixtures import builds, torch_model  # noqa: E402,F401
