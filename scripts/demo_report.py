"""Print what `make demo` made: each transcript with its word error rate against the known
script of the sample (examples/media/<name>.txt), and the files of the dataset."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

MEDIA = Path(__file__).resolve().parents[1] / "examples" / "media"


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference length (substitutions, insertions, deletions)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def main(data_dir: Path) -> int:
    dataset = data_dir / "dataset"
    captions = pq.read_table(dataset / "captions.parquet").to_pylist()
    worst = 0.0
    for row in sorted(captions, key=lambda r: r["item_key"]):
        script = MEDIA / (Path(row["item_key"]).stem + ".txt")
        rate = word_error_rate(script.read_text(), row["caption"]) if script.exists() else None
        worst = max(worst, rate or 0.0)
        shown = f"WER {rate:.2f}" if rate is not None else "no script"
        print(f"{row['item_key']} ({row['model']}, {len(row['segments'] or [])} segments, {shown})")
        print(f"  {row['caption']}")
    contributors = pq.read_table(dataset / "contributors.parquet").to_pylist()
    print("contributors:", ", ".join(f"{c['name']} ({c['total_captions']})" for c in contributors))
    print("files:")
    for path in sorted(p for p in dataset.rglob("*") if p.is_file()):
        print(f"  {path} ({path.stat().st_size:,} bytes)")
    if worst > 0.1:
        print(f"word error rate {worst:.2f} is over 0.1", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo_data")))
