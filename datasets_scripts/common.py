"""Machinery every converter shares: crash-safe output, per-file error reports, and the common CLI options.

Output protocol (:class:`DatasetWriter`):

1. Rows stream into Arrow files inside a hidden staging folder next to the target,
   ``<parent>/.<name>.partial-<pid>``, so a crash never leaves anything at ``<output_dir>``.
2. When every input has been read, each benchmark's ``DatasetDict`` is saved inside the staging folder together
   with ``conversion_report.json``, and the finished folder is renamed to ``<output_dir>`` in one
   ``os.rename`` (atomic on one filesystem). A dataset at ``<output_dir>`` is therefore always complete.
3. Staging folders left by killed runs are removed by the next run; an existing ``<output_dir>`` is only
   replaced with ``overwrite=True`` (``--overwrite``).

A file that cannot be read (truncated, garbled, wrong shape) is reported with the reason and skipped; the run
ends with the counts of converted and skipped inputs, and the report lists every skipped file.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from datasets import Dataset, DatasetDict, Features
from datasets.arrow_writer import ArrowWriter
from tqdm.auto import tqdm

from .schema import SCHEMA_VERSION, check_features

SPLITS = ("train", "test")
REPORT_FILE = "conversion_report.json"
_STAGING_RE = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


class ConversionError(RuntimeError):
    """The conversion cannot produce a dataset (no input converted, output exists without --overwrite, ...)."""


class ConversionReport:
    """Counts of converted / skipped / excluded inputs, with the reason for every skipped one."""

    def __init__(self, name: str):
        self.name = name
        self.converted = 0
        self.skipped: List[Tuple[str, str]] = []
        self.excluded: Dict[str, int] = {}
        self.split_counts: Dict[str, int] = {}
        self.details: Dict[str, object] = {}  # converter-specific sections of the report (JSON-serialisable)
        self.started = time.time()

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append((str(source), str(reason)))
        tqdm.write(f"[{self.name}] skipped {source}: {reason}", file=sys.stderr)

    def exclude(self, reason: str, count: int = 1) -> None:
        """Inputs left out on purpose (official missing-skeleton list, has_skeleton=False, ...)."""
        self.excluded[reason] = self.excluded.get(reason, 0) + count

    def summary(self) -> str:
        parts = [f"[{self.name}] converted {self.converted}, skipped {len(self.skipped)}"]
        if self.excluded:
            parts.append("excluded " + ", ".join(f"{n} ({r})" for r, n in sorted(self.excluded.items())))
        if self.split_counts:
            parts.append("splits " + ", ".join(f"{k}={v}" for k, v in sorted(self.split_counts.items())))
        parts.append(f"in {time.time() - self.started:.1f} s")
        return "; ".join(parts)

    def to_dict(self) -> Dict:
        return {"converter": self.name, "schema_version": SCHEMA_VERSION, "converted": self.converted,
                "skipped": [{"source": s, "reason": r} for s, r in self.skipped], "excluded": self.excluded,
                "split_counts": self.split_counts, **self.details, "seconds": round(time.time() - self.started, 3)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def staging_dir(output_dir) -> Path:
    """The hidden folder next to ``output_dir`` that this process writes into before publishing."""
    output_dir = Path(output_dir).absolute()
    return output_dir.parent / f".{output_dir.name}.partial-{os.getpid()}"


def remove_stale_staging(output_dir) -> None:
    """Delete staging folders that killed runs left next to ``output_dir``; refuse if a live run owns one."""
    output_dir = Path(output_dir).absolute()
    if not output_dir.parent.is_dir():
        return
    for entry in output_dir.parent.iterdir():
        match = _STAGING_RE.match(entry.name)
        if not match or match.group("name") != output_dir.name or not entry.is_dir():
            continue
        pid = int(match.group("pid"))
        if pid != os.getpid() and _pid_alive(pid):
            raise ConversionError(f"another conversion (pid {pid}) is writing {output_dir} ({entry})")
        tqdm.write(f"removing the unfinished output of an interrupted run: {entry}", file=sys.stderr)
        shutil.rmtree(entry)


def is_complete_dataset(path) -> bool:
    """True when ``path`` holds a finished conversion (written by :class:`DatasetWriter`)."""
    return (Path(path) / REPORT_FILE).is_file()


class DatasetWriter:
    """Streams rows into ``benchmark -> split`` datasets and publishes them atomically (see module docstring).

    Args:
        output_dir: the final folder. With one benchmark it holds a ``DatasetDict`` (``train``/``test``); with
            several, one ``DatasetDict`` per benchmark in ``<output_dir>/<benchmark>``.
        features: the rows' schema (:func:`datasets_scripts.schema.pose_features`).
        benchmarks: benchmark names (e.g. ``["xsub", "xview"]``).
        overwrite: replace an existing ``output_dir``.
    """

    def __init__(self, output_dir, features: Features, benchmarks: Sequence[str], overwrite: bool = False,
                 writer_batch_size: int = 200):
        check_features(features)
        if not benchmarks:
            raise ValueError("DatasetWriter needs at least one benchmark")
        self.output_dir = Path(output_dir).absolute()
        self.features = features
        self.benchmarks = list(benchmarks)
        self.overwrite = overwrite
        if self.output_dir.exists() and not overwrite:
            state = "a complete dataset" if is_complete_dataset(self.output_dir) else "something"
            raise ConversionError(f"{self.output_dir} already holds {state}; pass --overwrite (overwrite=True) to "
                                  "replace it")
        self.output_dir.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_staging()
        self.staging = staging_dir(self.output_dir)
        if self.staging.exists():
            shutil.rmtree(self.staging)
        (self.staging / "_arrow").mkdir(parents=True)
        self._writers: Dict[Tuple[str, str], ArrowWriter] = {}
        for benchmark in self.benchmarks:
            for split in SPLITS:
                path = self.staging / "_arrow" / f"{benchmark}-{split}.arrow"
                self._writers[(benchmark, split)] = ArrowWriter(features=features, path=str(path),
                                                                writer_batch_size=writer_batch_size)
        self.counts = {key: 0 for key in self._writers}
        self._closed = False

    def _remove_stale_staging(self) -> None:
        remove_stale_staging(self.output_dir)

    def add(self, example: Dict, targets: Iterable[Tuple[str, str]]) -> None:
        """Write ``example`` to every ``(benchmark, split)`` in ``targets``."""
        for key in targets:
            if key not in self._writers:
                raise ValueError(f"unknown benchmark/split {key}; this writer has {sorted(self._writers)}")
            self._writers[key].write(example)
            self.counts[key] += 1

    def commit(self, report: ConversionReport, push_to_hub: Optional[str] = None) -> Path:
        """Save the datasets, write the report and move the result to ``output_dir``; returns that path."""
        if self._closed:
            raise RuntimeError("DatasetWriter already committed or aborted")
        if report.converted == 0:
            self.abort()
            raise ConversionError(f"[{report.name}] nothing was converted ({len(report.skipped)} inputs skipped); "
                                  f"no dataset written to {self.output_dir}")
        for writer in self._writers.values():
            writer.finalize()
            writer.close()
        result = self.staging / "result"
        dataset_dicts = {}
        for benchmark in self.benchmarks:
            splits = {split: Dataset.from_file(str(self.staging / "_arrow" / f"{benchmark}-{split}.arrow"))
                      for split in SPLITS}
            dataset_dict = DatasetDict(splits)
            target = result if len(self.benchmarks) == 1 else result / benchmark
            # `datasets` saves an empty split as zero shards, which load_from_disk cannot read back (IndexError):
            # give such a split one (empty) shard, so converting only training subjects still loads.
            dataset_dict.save_to_disk(str(target), num_shards={s: 1 for s, d in splits.items() if len(d) == 0})
            dataset_dicts[benchmark] = dataset_dict
            for split in SPLITS:
                key = split if len(self.benchmarks) == 1 else f"{benchmark}/{split}"
                report.split_counts[key] = self.counts[(benchmark, split)]
        report_dict = report.to_dict()
        report_dict["benchmarks"] = self.benchmarks
        (result / REPORT_FILE).write_text(json.dumps(report_dict, indent=2))
        del dataset_dicts
        previous = None
        if self.output_dir.exists():  # only reachable with overwrite=True
            previous = self.staging / "previous"
            os.rename(self.output_dir, previous)
        os.rename(result, self.output_dir)
        shutil.rmtree(self.staging, ignore_errors=True)
        self._closed = True
        if push_to_hub:
            self.push_to_hub(push_to_hub)
        return self.output_dir

    def push_to_hub(self, repo_id: str) -> None:
        from datasets import load_from_disk

        for benchmark in self.benchmarks:
            path = self.output_dir if len(self.benchmarks) == 1 else self.output_dir / benchmark
            config = "default" if len(self.benchmarks) == 1 else benchmark
            load_from_disk(str(path)).push_to_hub(repo_id, config_name=config)
            tqdm.write(f"pushed {path} to the Hub as {repo_id} (config {config!r})")

    def abort(self) -> None:
        """Drop everything written so far (the output folder is untouched)."""
        if self._closed:
            return
        for writer in self._writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - best effort while cleaning up after another error
                pass
        shutil.rmtree(self.staging, ignore_errors=True)
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def convert_items(items: Sequence, convert: Callable, writer: DatasetWriter, report: ConversionReport,
                  describe: Callable = str, desc: Optional[str] = None) -> None:
    """Run ``convert(item) -> [(example, targets), ...]`` over ``items``, skipping (and reporting) bad inputs.

    ``ValueError`` (a malformed file, see ``modeling_ups.pose_io``) and ``OSError`` (an unreadable one) skip the
    item; any other exception is a bug and propagates.
    """
    for item in tqdm(items, desc=desc or report.name, unit="file", dynamic_ncols=True, mininterval=0.5):
        try:
            rows = convert(item)
        except (ValueError, OSError) as err:
            report.skip(describe(item), str(err))
            continue
        for example, targets in rows:
            writer.add(example, targets)
            report.converted += 1


def finish(writer: DatasetWriter, report: ConversionReport, push_to_hub: Optional[str] = None) -> ConversionReport:
    """Commit ``writer`` and print the summary (counts, skipped files)."""
    path = writer.commit(report, push_to_hub=push_to_hub)
    print(report.summary())
    for source, reason in report.skipped:
        print(f"  skipped {source}: {reason}")
    print(f"saved to {path}")
    return report


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--output_dir", required=True, help="folder to write (save_to_disk format)")
    group.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    group.add_argument("--push_to_hub", metavar="REPO", help="also push the result to this Hub dataset repo")


def run_cli(description: str, add_arguments: Callable, run: Callable, argv=None, prog: Optional[str] = None) -> int:
    """``python -m datasets_scripts.<name>`` entry point: parse, run, turn ConversionError into exit code 1."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_parsed(run, args)


def run_parsed(run: Callable, args: argparse.Namespace) -> int:
    try:
        run(args)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def parse_benchmarks(requested: Optional[Sequence[str]], available: Sequence[str]) -> List[str]:
    if not requested or list(requested) == ["all"]:
        return list(available)
    unknown = [b for b in requested if b not in available]
    if unknown:
        raise ConversionError(f"unknown benchmark(s) {unknown}; this dataset has {list(available)}")
    return list(dict.fromkeys(requested))


def read_lines_file(path) -> List[str]:
    """Non-empty, non-comment lines of a text file (class names, missing-sample lists)."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


DATA_DIR = Path(__file__).resolve().parent / "data"

__all__ = [
    "SPLITS",
    "REPORT_FILE",
    "DATA_DIR",
    "ConversionError",
    "ConversionReport",
    "DatasetWriter",
    "is_complete_dataset",
    "staging_dir",
    "remove_stale_staging",
    "convert_items",
    "finish",
    "add_output_arguments",
    "run_cli",
    "run_parsed",
    "parse_benchmarks",
    "read_lines_file",
]
