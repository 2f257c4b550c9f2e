"""What a run shows and leaves: metrics.jsonl (one object per step), a progress line with loss,
tokens/s and ETA, and loss.png drawn from metrics.jsonl."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path


class Metrics:
    """Appends one JSON object per step to ``path``; on resume, drops the lines of steps after
    the checkpoint (they are about to be trained again)."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        if resume_step is not None and path.is_file():
            keep = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in keep))
        self._file = open(path, "a")

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ProgressBar:
    """``step 120/500 [#####.....] loss 3.412 | 8.1k tok/s | ETA 1m02s`` on stderr: redrawn in
    place on a terminal, otherwise about twenty plain lines per run."""

    def __init__(self, total: int, start: int, enabled: bool, stream=None):
        self.total, self.start, self.enabled = total, start, enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()
        self.every = max(1, (total - start) // 20)

    def update(self, step: int, loss: float, tokens_per_s: float, note: str = "") -> None:
        if not self.enabled:
            return
        done = step - self.start
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - step) if done else 0.0
        width = 20
        filled = int(width * step / self.total)
        line = (f"step {step}/{self.total} [{'#' * filled}{'.' * (width - filled)}] loss {loss:.4f} | "
                f"{_si(tokens_per_s)} tok/s | ETA {_duration(eta)}{note}")
        if self.tty:
            print("\r" + line + "\033[K", end="", file=self.stream, flush=True)
        elif done % self.every == 0 or step == self.total or note:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=self.stream, flush=True)


def _si(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 1000 else f"{x:.0f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def plot(metrics_path: Path, out: Path, title: str) -> None:
    """Draw train loss per step (and eval loss where measured) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1, label="train loss")
    evals = [r for r in rows if "eval_loss" in r]
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", ms=3, label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(out)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 700.0))
