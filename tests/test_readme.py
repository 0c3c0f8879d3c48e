"""The README's record-layout table must state what the gateware actually emits."""

import re
from pathlib import Path

from heraldry.gateware.layouts import CoreParameters, flatten_layout

README = Path(__file__).parent.parent / "README.md"


def test_record_layout_table_matches_the_layout():
    text = README.read_text()
    table = text.split("<!-- record-layout:begin -->")[1].split("<!-- record-layout:end -->")[0]
    params = CoreParameters()
    fields = {".".join(map(str, path)): (offset, width)
              for path, offset, width in flatten_layout(params.record_layout())}
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| (\d+) \|", table, re.M)
    assert len(rows) == 8
    for name, bits, width in rows:
        if name.startswith("cells"):
            leaf = name.split(".")[-1]
            base = int(re.match(r"(\d+)", bits).group(1))
            for w in range(params.n_windows):
                for c in range(params.n_channels):
                    offset, real_width = fields[f"cells.{w}.{c}.{leaf}"]
                    assert offset == base + 18 * (2 * w + c)
                    assert real_width == int(width)
        else:
            low, high = map(int, re.match(r"(\d+)–(\d+)", bits).groups())
            assert fields[name] == (low, int(width)) and high - low + 1 == int(width), name
    assert params.record_layout().size == 206
