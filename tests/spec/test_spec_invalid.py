"""One invalid spec per rule: each must fail with exactly the stated location, path and message.

Each file under ``invalid/`` ends with its expectations, so the case and its verdict are read
together::

    # expect: LINE:COL: dotted.path: message
    #   hint: hint text
"""

from __future__ import annotations

from pathlib import Path

import pytest

from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_file

CASES = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def expectations(path: Path) -> list[tuple[str, str | None]]:
    """[(\"LINE:COL: path: message\", hint or None)] in file order."""
    out: list[tuple[str, str | None]] = []
    for line in path.read_text().splitlines():
        if line.startswith("# expect: "):
            out.append((line[len("# expect: "):], None))
        elif line.startswith("#   hint: "):
            out[-1] = (out[-1][0], line[len("#   hint: "):])
    return out


def test_there_is_a_case_per_rule():
    names = {p.stem for p in CASES}
    for rule in ("unknown_key", "bad_kind", "duplicate_key", "anchor", "missing_required",
                 "kv_heads_divide", "embed_not_divisible", "rope_odd", "window_too_big",
                 "bidi_causal_lm", "override_index", "override_range", "override_every",
                 "override_set_body", "tokenizer_vocab", "tokenizer_special_id",
                 "checkpoint_layers", "rope_base_not_rope", "octal"):
        assert rule in names


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_invalid_spec_reports_exact_location_and_message(path: Path):
    expected = expectations(path)
    assert expected, f"{path.name} states no expectation"
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    got = []
    for issue in info.value.issues:
        assert issue.file == str(path)
        assert issue.severity == "error"
        where = f"{issue.line}:{issue.column}: "
        got.append((where + (f"{issue.path}: " if issue.path else "") + issue.message, issue.hint))
    assert got == expected
    # The printed form leads with FILE:LINE:COL, one block per issue.
    text = info.value.format()
    for issue in info.value.issues:
        assert f"{path}:{issue.line}:{issue.column}: " in text


def test_all_errors_reported_at_once():
    path = Path(__file__).parent / "invalid" / "all_at_once.yaml"
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert [i.path for i in info.value.issues] == ["num_layers", "norm.eps", "block.ffn.kind"]
