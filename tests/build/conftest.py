import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from buildfixtures import builds, torch_model  # noqa: E402,F401
