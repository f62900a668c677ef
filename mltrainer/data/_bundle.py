"""`prepare_data`: load → check → split → fingerprint → fit preprocessing on train; and the
`DataBundle` it returns, which hands out the test split to `mlt finalize` and nobody else."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mltrainer.config import MltConfig
from mltrainer.data._spec import DataSpec
from mltrainer.errors import DataError

if TYPE_CHECKING:  # pandas and the split load only when data is prepared anew
    from mltrainer.data._preprocess import Preprocessor

from mltrainer.data._testlock import (  # noqa: F401 (running_phase: re-exported)
    TEST_PHASE,
    AuditFn,
    check_test_request,
    running_phase,
)


def _project_audit(root: Path) -> AuditFn | None:
    """The project's audit log at `root` (when it is a project), for callers that pass none:
    a request for the test split is audited whichever door it comes through."""
    from mltrainer.project import Project
    from mltrainer.state import audit

    project = Project.at(root)
    if not project.mlt_dir.is_dir():
        return None

    def write(record: dict[str, Any]) -> None:
        rec = dict(record)
        audit(project, rec.pop("event"), **rec)

    return write


@dataclass(frozen=True)
class Split:
    """One split, ready to train on. `X` is preprocessed (float32, no NaN); `encoded` is the
    same rows before scaling (the exported graph's input); `raw_index` are source row numbers."""

    X: np.ndarray
    y: np.ndarray
    raw_index: np.ndarray
    encoded: np.ndarray = field(repr=False, default_factory=lambda: np.empty((0, 0), np.float32))

    def __len__(self) -> int:
        return len(self.y)


class DataBundle:
    """The prepared data. The test split is held back: `test(phase)` releases it to finalize."""

    def __init__(
        self,
        *,
        spec: DataSpec,
        train: Split,
        val: Split,
        test: Split | None,
        fingerprints: dict[str, str],
        split_info: dict[str, Any],
        duplicates: dict[str, int],
        preprocessor: Preprocessor,
        source: str,
        audit: AuditFn | None = None,
        test_loader: Callable[[], Split] | None = None,
    ) -> None:
        if (test is None) == (test_loader is None):
            raise ValueError("give the test split or a loader of it, not both or neither")
        self.spec = spec
        self.train = train
        self.val = val
        self._test = test
        self._test_loader = test_loader  # cached bundles load test rows only when finalize asks
        self.fingerprints = fingerprints
        self.split_info = split_info
        self.duplicates = duplicates
        self.preprocessor = preprocessor
        self.source = source
        self._audit = audit

    def audited_by(self, audit: AuditFn | None) -> None:
        """Audit test requests with `audit` (a bundle prepared in a forked child: its audit
        belongs to the process that uses it, and is not pickled)."""
        self._audit = audit

    def __getstate__(self) -> dict[str, Any]:
        if self._test_loader is not None:
            raise TypeError("a sealed bundle is not pickled: its test rows load through a "
                            "function of this process")
        return {**self.__dict__, "_audit": None}

    def test(self, phase: str) -> Split:
        """The test split, for `phase == "finalize"` while finalize runs; anything else is
        refused. Every request is audited, granted or not."""
        check_test_request(phase, self._audit)
        return self._test_rows()

    def _test_rows(self) -> Split:
        """The test split without the lock: for `test` (finalize) and for writing the prepared
        data to the project's cache (`_to_cache`), nothing else. Loaded rows stay for a second
        request within the same finalize."""
        if self._test is None:
            assert self._test_loader is not None
            self._test = self._test_loader()
        return self._test

    def _seal_test(self, loader: Callable[[], Split]) -> None:
        """Drop the test rows from memory; `loader` brings them back when finalize asks. Every
        bundle that leaves `prepare_data` or `cache_prepared` is sealed, so no phase but
        finalize ever has a test row in memory."""
        self._test, self._test_loader = None, loader

    def __repr__(self) -> str:
        sizes = self.split_info.get("sizes", {})
        return (f"DataBundle(source={self.source!r}, task={self.spec.task!r}, "
                f"n_features={self.spec.n_features}, sizes={sizes})")


def prepare_data(cfg: MltConfig, root: Path, *, audit: AuditFn | None = None,
                 cache: bool = True) -> DataBundle:
    """Load the configured source, split it by content and seed, fit preprocessing on train.

    With `cache` (in an mlt project, for a source whose fingerprint covers its rows), what
    `cache_prepared` stored for the same source, config and code is loaded instead, after its
    files verify; a miss prepares the data and stores it. `mlt plan` passes `cache=False` (it
    measures what its gate judges) and stores its result with `cache_prepared` once it passed.
    Raises DataError (exit 2) naming the source and what is wrong; touches no file on error.
    """
    from mltrainer.data import _cache

    if audit is None:
        audit = _project_audit(Path(root))
    entry = _cache.entry_dir(cfg, Path(root)) if cache else None
    if entry is not None:
        cached = _cache.load(entry)
        if cached is not None:
            try:
                return _from_cache(cached, audit, rebuild=lambda: _prepare(cfg, Path(root), audit))
            except Exception:  # a record that does not parse: prepare the data again
                pass
    bundle = _prepare(cfg, Path(root), audit)
    if cache:
        _store_and_seal(cfg, Path(root), bundle, entry, audit)
    return bundle


def cache_prepared(cfg: MltConfig, root: Path, bundle: DataBundle) -> None:
    """Store `bundle` (prepared from `cfg` in project `root`, with `cache=False`) for the
    commands after this one, and drop its test rows from memory (see `_store_and_seal`)."""
    from mltrainer.data import _cache

    _store_and_seal(cfg, Path(root), bundle, _cache.entry_dir(cfg, Path(root)), bundle._audit)


def _store_and_seal(cfg: MltConfig, root: Path, bundle: DataBundle, entry: Path | None,
                    audit: AuditFn | None) -> None:
    """Write a freshly prepared table bundle to the cache entry (when it has one), then seal
    its test split: finalize reads it back from the entry, or (no entry, or one that is gone
    or damaged by then) prepares the data again from the source and checks that the test rows
    are the ones fingerprinted at preparation."""
    from mltrainer.data import _cache

    if getattr(bundle, "is_lazy", False):  # item data: references to items, not cached
        return
    if entry is not None:
        _cache.store(entry, *_to_cache(bundle))
    expected = bundle.fingerprints.get("test")

    def load_test() -> Split:
        if entry is not None:
            cached = _cache.load(entry)
            if cached is not None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    return _cached_split(cached.load_test(), bundle.preprocessor)
        fresh = _prepare(cfg, root, audit)
        if fresh.fingerprints.get("test") != expected:
            raise DataError(
                f"{cfg.data.source}: the test rows prepared now are not the ones prepared "
                f"before (test fingerprint {str(fresh.fingerprints.get('test'))[:12]} vs "
                f"{str(expected)[:12]})",
                hint="the source's rows changed since they were split: run `mlt plan` again")
        return fresh._test_rows()

    bundle._seal_test(load_test)


# X is `preprocessor.scale(encoded)`, recomputed bit for bit on load (`_cached_split`): storing
# it would double the bytes plan writes and hashes and every later command reads and hashes
_SPLIT_ARRAYS = ("y", "raw_index", "encoded")


def _cached_split(arrays: dict[str, np.ndarray], preprocessor: Preprocessor) -> Split:
    return Split(X=preprocessor.scale(arrays["encoded"]), **arrays)


def _to_cache(bundle: DataBundle) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    splits = {"train": bundle.train, "val": bundle.val, "test": bundle._test_rows()}
    arrays = {name: {a: getattr(split, a) for a in _SPLIT_ARRAYS}
              for name, split in splits.items()}
    record = {"source": bundle.source, "spec": bundle.spec.to_dict(),
              "fingerprints": bundle.fingerprints, "split_info": bundle.split_info,
              "duplicates": bundle.duplicates, "preprocessor": bundle.preprocessor.to_dict()}
    return arrays, record


def _from_cache(cached: Any, audit: AuditFn | None, rebuild: Callable[[], DataBundle]
                ) -> DataBundle:
    from mltrainer.data._preprocess import Preprocessor

    meta = cached.meta
    fingerprints = {str(k): str(v) for k, v in meta["fingerprints"].items()}
    preprocessor = Preprocessor.from_dict(meta["preprocessor"])

    def load_test() -> Split:
        try:
            return _cached_split(cached.load_test(), preprocessor)
        except (OSError, ValueError, KeyError):  # a damaged test file: prepare the data again
            fresh = rebuild()
            if fresh.fingerprints != fingerprints:
                raise
            return fresh._test_rows()

    return DataBundle(
        spec=DataSpec.from_dict(meta["spec"]), train=_cached_split(cached.train, preprocessor),
        val=_cached_split(cached.val, preprocessor), test=None, test_loader=load_test,
        fingerprints=fingerprints, split_info=meta["split_info"],
        duplicates={str(k): int(v) for k, v in meta["duplicates"].items()},
        preprocessor=preprocessor, source=str(meta["source"]),
        audit=audit,
    )


def _prepare(cfg: MltConfig, root: Path, audit: AuditFn | None) -> DataBundle:
    from mltrainer.data._preprocess import Preprocessor, unseen_categories
    from mltrainer.data._sources import RawData, source_for
    from mltrainer.data._split import (
        digest_groups,
        duplicate_evidence,
        extend_digests,
        grouped_split,
        row_digests,
        sequence_fingerprint,
        set_fingerprint,
        split_info,
    )
    from mltrainer.data._table import check_features, encode_target, select_columns
    from mltrainer.data._target import fit_target_scale

    where = cfg.data.source
    raw = source_for(where, cfg.data.text_column).load(cfg, Path(root))
    if not isinstance(raw, RawData):  # item data (images, text, torch Datasets): lazy
        from mltrainer.data._items import prepare_items

        return prepare_items(cfg, Path(root), raw, audit=audit)  # type: ignore[return-value]
    features, target = select_columns(raw.frame, raw.target, drop=list(cfg.data.drop),
                                      target_required=raw.target_required, where=where)
    check_features(features, where, raw.row_lines)
    y, class_labels = encode_target(target, cfg.task, where, raw.row_lines)

    digests = row_digests(features)
    full = extend_digests(digests, target)
    groups = digest_groups(digests)
    stratify = cfg.task == "classification" and cfg.data.split.stratify
    plan = grouped_split(digests, y if stratify else None, seed=cfg.seed,
                         val=cfg.data.split.val, test=cfg.data.split.test, where=where,
                         groups=groups)
    schema = {"columns": [str(c) for c in features.columns], "target": str(target.name)}
    fingerprints = {"data": raw.data_hash or sequence_fingerprint(full, schema)}
    fingerprints.update({name: set_fingerprint(full[idx], schema)
                         for name, idx in plan.indices().items()})

    preprocessor = Preprocessor()
    try:
        preprocessor.fit(features.iloc[plan.train])
    except DataError as exc:
        raise DataError(f"{where}: {exc.message}", hint=exc.hint) from None
    encoded = preprocessor.encode(features)  # row by row: encode once, then take each split
    splits = {name: _make_split(encoded, y, idx, preprocessor)
              for name, idx in plan.indices().items()}

    n_features = preprocessor.n_features
    image_shape = raw.image_shape
    if image_shape is not None and int(np.prod(image_shape)) != n_features:
        image_shape = None  # columns were dropped: the rows are no longer images
    spec = DataSpec(
        task=cfg.task, n_features=n_features,
        n_classes=len(class_labels) if class_labels is not None else None,
        feature_names=preprocessor.feature_names, image_shape=image_shape,
        class_labels=class_labels, target=str(target.name),
        target_scale=fit_target_scale(cfg, splits["train"].y),
    )
    info = split_info(cfg, plan, y, class_labels, len(features),
                      "identical feature rows (sha256) are kept together in one split")
    unseen = {name: {col: int(rows.sum()) for col, rows in found.items()}
              for name in ("val", "test")
              if (found := unseen_categories(preprocessor, features.iloc[getattr(plan, name)]))}
    if unseen:  # encoded as none of the known categories: said, not silent
        info["unseen_categories"] = unseen
    return DataBundle(
        spec=spec, train=splits["train"], val=splits["val"], test=splits["test"],
        fingerprints=fingerprints,
        split_info=info,
        duplicates=duplicate_evidence(digests, plan, full, groups),
        preprocessor=preprocessor, source=where, audit=audit,
    )


def _make_split(encoded_rows: np.ndarray, y: np.ndarray, idx: np.ndarray,
                pre: Preprocessor) -> Split:
    encoded = encoded_rows[idx]
    return Split(X=pre.scale(encoded), y=y[idx], raw_index=idx.astype(np.int64), encoded=encoded)


