"""The embedded warehouse as it grows: upserts per second at 1k, 10k and 100k stored posts, in one run.

    python benchmarks/warehouse.py [--sizes 1000 10000 100000] [--sample 200] [--json results.json]

At each size the store is filled with LinkedIn-sized posts (about 600 characters, in bulk, not timed), then
`sample` upserts are timed through `Warehouse.upsert_document`, the crawlers' path: half new posts, half
changed ones. The baseline is montydb's own sqlite storage, measured in the same run on the same posts; it
decodes the whole collection for every lookup, so it is sampled more thinly and skipped above
`--baseline-max` documents (it would take hours). The figures: upserts per second, the ratio to the
baseline, and how the cost at each size compares with the cost at the smallest (1.0 is flat).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twin_resources.domain.documents import PostContent, PostDocument, UserDocument  # noqa: E402
from twin_resources.warehouse import Warehouse, _ensure_collections  # noqa: E402

AUTHOR = UserDocument.from_full_name("Bench Mark")
SENTENCE = "Shipping a pipeline is the easy part; keeping it honest as the data drifts is the work. "


def post(number: int, edition: int = 0) -> PostDocument:
    body = f"Post {number}, edition {edition}. " + SENTENCE * 7
    return PostDocument.create(link=f"https://www.linkedin.com/posts/bench-{number}", author=AUTHOR,
                               platform="linkedin", content=PostContent(body=body))


def fill(warehouse: Warehouse, start: int, stop: int) -> None:
    """Add posts start..stop-1 in bulk (montydb's insert_many: one sqlite transaction per batch)."""
    collection = warehouse.collection("posts")
    batch = 5000
    for first in tqdm(range(start, stop, batch), desc=f"filling to {stop:,}", unit="batch", leave=False):
        collection.insert_many([post(n).to_mongo() for n in range(first, min(first + batch, stop))])


def timed_upserts(warehouse: Warehouse, size: int, sample: int) -> float:
    """Seconds per upsert at `size` stored posts: half changed posts, half new ones (removed afterwards, so
    the size holds)."""
    changed = [post(n * (size // max(sample // 2, 1)) % size, edition=1) for n in range(sample // 2)]
    new = [post(10_000_000 + n) for n in range(sample - len(changed))]
    started = time.perf_counter()
    outcomes = [warehouse.upsert_document(document) for document in changed + new]
    seconds = (time.perf_counter() - started) / sample
    assert outcomes.count("new") == len(new), outcomes
    warehouse.collection("posts").delete_many({"_id": {"$in": [document.id for document in new]}})
    return seconds


class MontydbAsItComes(Warehouse):
    """The warehouse on montydb's own sqlite storage: the baseline."""

    def connect(self) -> "MontydbAsItComes":
        if self._db is None:
            from montydb import MontyClient, set_storage

            repository = Path(self.home) / "warehouse"
            repository.mkdir(parents=True, exist_ok=True)
            set_storage(str(repository), storage="sqlite")
            self._client = MontyClient(str(repository))
            self._db = self._client[self.database]
            _ensure_collections(self._db)
        return self

    def collection(self, name: str):
        return self.connect()._db[name]


def measure(home: Path, sizes: list[int], sample: int, keyed: bool) -> dict[int, float]:
    warehouse = (Warehouse if keyed else MontydbAsItComes)(home=str(home)).connect()
    results, stored = {}, 0
    for size in sizes:
        fill(warehouse, stored, size)
        stored = size
        results[size] = timed_upserts(warehouse, size, sample)
    warehouse.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--sample", type=int, default=200, help="timed upserts per size")
    parser.add_argument("--baseline-max", type=int, default=10_000, help="largest size the baseline is run at")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as keyed_home, tempfile.TemporaryDirectory() as plain_home:
        keyed = measure(Path(keyed_home), args.sizes, args.sample, keyed=True)
        baseline_sizes = [size for size in args.sizes if size <= args.baseline_max]
        plain = measure(Path(plain_home), baseline_sizes, max(args.sample // 10, 10), keyed=False)

    smallest = keyed[args.sizes[0]]
    print(f"{'stored posts':>12}  {'upserts/s':>10}  {'vs smallest':>11}  {'montydb as is':>13}  {'speed-up':>8}")
    rows = []
    for size in args.sizes:
        row = {"size": size, "upserts_per_s": 1 / keyed[size], "cost_vs_smallest": keyed[size] / smallest,
               "baseline_upserts_per_s": 1 / plain[size] if size in plain else None,
               "speedup": plain[size] / keyed[size] if size in plain else None}
        rows.append(row)
        baseline = f"{row['baseline_upserts_per_s']:13.1f}" if row["baseline_upserts_per_s"] else f"{'not run':>13}"
        speedup = f"{row['speedup']:7.1f}x" if row["speedup"] else f"{'':>8}"
        print(f"{size:>12,}  {row['upserts_per_s']:10.1f}  {row['cost_vs_smallest']:10.2f}x  {baseline}  {speedup}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
