"""Issue 14 item 5: every numeric label has physical bounds, applied by the decoder.

Issue 21: a value out of range costs that field only; the block keeps its other fields.
"""

from __future__ import annotations

import pytest

from vemonitor.fieldpolicy import FieldDrops, keep_good_fields
from vemonitor.vedirect.decoder import Decoder
from vemonitor.vedirect.encoder import encode_block
from vemonitor.vedirect.events import Block, Rejected
from vemonitor.vedirect.fields import BOUNDS, FIELDS

GOOD = [("PID", "0x203"), ("V", "12800"), ("I", "-1500"), ("SOC", "876"), ("TTG", "900"),
        ("H4", "3"), ("H7", "11733"), ("H9", "368003"), ("H17", "6843"), ("H18", "8527")]


def _decode(records: list[tuple[str, str]], fast: bool) -> list[Block | Rejected]:
    data = encode_block(records) * 3  # the fast path learns the shape on the first block
    events = Decoder(fast_path=fast).feed(data)
    return [e for e in events if isinstance(e, (Block, Rejected))]


# The reproduced values of the issue, in wire units.
ABSURD = [("H7", "999999999"), ("H17", "-100000000000000000000"[:20]),
          ("H18", "10000000000000000000"), ("H4", "-7"), ("H9", "-100"), ("TTG", "-99999"),
          ("H1", "99999999999")]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(("label", "value"), ABSURD)
def test_impossible_values_cost_only_their_field(label: str, value: str, fast: bool) -> None:
    """H7 = 999999.999 V, H17 = -1e18 kWh, H4 = -7 cycles, H9 = -100 s, TTG = -99999...: the
    field is left out (Block.out_of_range), every other field kept, by both decoder paths."""
    good = _decode(GOOD, fast)
    assert all(isinstance(e, Block) for e in good) and len(good) == 3
    bad = [(k, value if k == label else v) for k, v in GOOD] + (
        [] if label in dict(GOOD) else [(label, value)])
    events = _decode(bad, fast)
    assert not [e for e in events if isinstance(e, Rejected)]
    assert [e.out_of_range for e in events] == [((label, value),)] * 3
    assert [e.fields for e in events] == [{k: v for k, v in bad if k != label}] * 3


def test_every_numeric_label_has_bounds() -> None:
    """Every int/scaled field of the table has a physical range."""
    numeric = {f.label for f in FIELDS if f.kind in ("int", "scaled")}
    assert numeric <= set(BOUNDS), sorted(numeric - set(BOUNDS))


def test_rows_from_any_input_get_the_same_bounds() -> None:
    """The engine's field policy uses the same table: a Redis row with H17 = -1e18 keeps V."""
    drops = FieldDrops("input test")
    assert keep_good_fields({"V": 12.0, "H17": -1e18}, drops, 0.0) == {"V": 12.0}
    assert keep_good_fields({"V": float("nan"), "I": 1.5}, drops, 0.0) == {"I": 1.5}
    # NaN has its own reason since issue 25 (typed fields): not a finite number.
    assert drops.as_dict() == {"out_of_range": {"H17": 1}, "not_finite": {"V": 1}}
