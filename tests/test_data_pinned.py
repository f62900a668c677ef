# ruff: noqa: E501  (the pinned fingerprints are 64 hex digits: kept whole, one per line)
"""The split of fixed data sets, pinned byte for byte.

The values below were recorded with the data layer as it was before its hashing, split and
dedup were vectorised (commit a48d7f4): row indices of each split, per-split fingerprints,
the duplicates evidence and the split record. A change to the data layer that moves one row,
one hash or one count fails here, so speed work on it is provably behaviour-free. The inputs are
built by arithmetic, not by a random generator, so they cannot drift with a library version.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mltrainer.config import parse_config
from mltrainer.data import prepare_data, running_phase
from mltrainer.data._split import row_digests

COLORS = ["red", "green", "blue", "", "Red", "1.5"]  # "" is a missing cell in a CSV
CITIES = ["paris", "rome", "oslo", "lima", "köln"]


def mixed_csv(path: Path, n: int = 300) -> None:
    """Numbers (NaN, -0.0, ints), text categories with missing cells, a text target, and rows
    repeated with the same and with a different label (duplicates and conflicting labels)."""
    lines = ["age,income,color,city,count,label"]
    for i in range(n):
        age = "" if i % 17 == 3 else f"{20 + (i * 7) % 45}.{i % 10}"
        income = "-0.0" if i % 23 == 0 else ("0.0" if i % 23 == 1 else f"{(i * 3917) % 9973}.25")
        color = COLORS[(i * 5) % len(COLORS)]
        city = CITIES[(i * 3) % len(CITIES)]
        label = ["yes", "no", "maybe"][(i * i + i // 7) % 3]
        lines.append(f"{age},{income},{color},{city},{i % 4},{label}")
    for i in range(0, 60, 3):  # exact repeats, and repeats with a flipped label
        lines.append(lines[1 + i])
        if i % 2:
            head, _, label = lines[1 + i].rpartition(",")
            lines.append(f"{head},{'no' if label == 'yes' else 'yes'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def rare_csv(path: Path) -> None:
    rows = [f"{99 if i == 0 else i % 29},{'rare' if i == 0 else ('a' if i % 2 else 'b')}" for i in range(40)]
    path.write_text("x,y\n" + "\n".join(rows) + "\n", encoding="utf-8")


def float_npz(path: Path, n: int = 400) -> None:
    """float32 features with NaN, -0.0 and +0.0, repeated rows; integer labels."""
    i = np.arange(n, dtype=np.float64)
    X = np.stack([(i * 7) % 13, (i * i) % 17 / 4, np.where(i % 11 == 0, np.nan, i % 5),
                  np.where(i % 9 == 0, -0.0, (i % 3) * 0.0), (i * 3) % 7 - 3.5], axis=1)
    X[n // 2:n // 2 + 40] = X[:40]  # 40 repeated rows
    np.savez(path, X=X.astype(np.float32), y=((i * 5) % 4).astype(np.int64))


CASES: dict[str, dict[str, Any]] = {
    # an .npz's own bytes carry zip timestamps: its data fingerprint (the file's sha256) is not
    # pinned, the per-split fingerprints (row digests) are
    "npz": {"source": "table.npz", "make": float_npz, "unpinned": ["data"]},
    "digits": {"source": "sklearn:digits"},
    "diabetes": {"source": "sklearn:diabetes", "task": "regression", "metric": "rmse"},
    "mixed": {"source": "mixed.csv", "target": "label", "make": mixed_csv},
    "mixed-unstratified": {"source": "mixed.csv", "target": "label", "make": mixed_csv,
                           "stratify": False, "seed": 7, "val": 0.2, "test": 0.1},
    "rare": {"source": "rare.csv", "target": "y", "make": rare_csv},
}


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def observe(name: str, root: Path) -> dict[str, Any]:
    case = CASES[name]
    if "make" in case:
        case["make"](root / case["source"])
    data: dict[str, Any] = {"source": case["source"], "split": {
        "val": case.get("val", 0.15), "test": case.get("test", 0.15),
        "stratify": case.get("stratify", True)}}
    if "target" in case:
        data["target"] = case["target"]
    cfg = parse_config({"name": "pin", "task": case.get("task", "classification"),
                        "seed": case.get("seed", 42), "data": data,
                        "goal": {"metric": case.get("metric", "accuracy"), "target": 0.5}})
    bundle = prepare_data(cfg, root)
    with running_phase("finalize"):  # the test split is released while finalize runs
        test = bundle.test("finalize")
    info = {k: v for k, v in bundle.split_info.items() if k != "method"}
    return {
        "indices": {s: _sha(p.raw_index.astype("<i8"))
                    for s, p in (("train", bundle.train), ("val", bundle.val), ("test", test))},
        "X": {s: _sha(p.X) for s, p in (("train", bundle.train), ("val", bundle.val),
                                        ("test", test))},
        "fingerprints": {k: v for k, v in bundle.fingerprints.items()
                         if k not in case.get("unpinned", [])},
        "duplicates": bundle.duplicates,
        "split_info": info,
    }


PINNED: dict[str, dict[str, Any]] = {
 'npz': {'indices': {'train': 'ac134de87d479e8c',
                     'val': '9fb3840c26224a6e',
                     'test': 'd9122506d8ab69f4'},
         'X': {'train': '85e92ff8d757e108',
               'val': '995ea7eeea3633c5',
               'test': 'edc8a46a1276a891'},
         'fingerprints': {'train': 'c12deb873d05138009d5d1997f69303739d64a2f20f13eedeb480b2b2fa83598',
                          'val': '86202f218ea3771d1ff48d2cf4504bb33b6a741c22def61efb8290d7c76f9db3',
                          'test': 'ab834219423a24d0952bba8563e542046bb5019ae86bb755a889ea15befd8e2c'},
         'duplicates': {'train_val': 0,
                        'train_test': 0,
                        'val_test': 0,
                        'within_data': 40,
                        'conflicting_labels': 0},
         'split_info': {'sizes': {'train': 278, 'val': 59, 'test': 63},
                        'fractions': {'train': 0.695, 'val': 0.1475, 'test': 0.1575},
                        'requested': {'val': 0.15, 'test': 0.15},
                        'distinct_rows': {'train': 252, 'val': 54, 'test': 54},
                        'seed': 42,
                        'stratified': True,
                        'class_counts': {'train': {'0': 70, '1': 71, '2': 70, '3': 67},
                                         'val': {'0': 13, '1': 14, '2': 16, '3': 16},
                                         'test': {'0': 17, '1': 15, '2': 14, '3': 17}}}},'diabetes': {'indices': {'train': '95531e4d10f90416',
                          'val': '954c4093615fbae4',
                          'test': '3a35a095be2d4f63'},
              'X': {'train': 'f1af3b0d91657c01',
                    'val': '8afbc2bf0130ffc1',
                    'test': 'da7b0c3bec11dca4'},
              'fingerprints': {'data': 'd3e6ec76c12d75326f26434111428b61657d36a76030eb89c159cea3408e0b63',
                               'train': '58281dcea3ac5da62d45981a47f8bd755481399ed1c167cfc3beefc76944921d',
                               'val': 'fd39de51b87a2cca5da5ca3afe1a884ad25b5a2973334f420363b75cbfaa3e43',
                               'test': '37ddb92332146fc227a20c888be121819a7883444d666388118e31176dd56f95'},
              'duplicates': {'train_val': 0,
                             'train_test': 0,
                             'val_test': 0,
                             'within_data': 0,
                             'conflicting_labels': 0},
              'split_info': {'sizes': {'train': 308, 'val': 67, 'test': 67},
                             'fractions': {'train': 0.6968, 'val': 0.1516, 'test': 0.1516},
                             'requested': {'val': 0.15, 'test': 0.15},
                             'distinct_rows': {'train': 308, 'val': 67, 'test': 67},
                             'seed': 42,
                             'stratified': False}},
 'digits': {'indices': {'train': 'cbfd68df8b2be6a1',
                        'val': 'c0c42ccfe874f3ce',
                        'test': '4702c5038b61a641'},
            'X': {'train': '017b37da894ea8fd',
                  'val': '10a53d8725573445',
                  'test': '8bccdf693ad13e06'},
            'fingerprints': {'data': '037fa158fa4b0ee7c7bd8568d0938dde3574a63c624bb78cde9a778b6a755e1a',
                             'train': '6a6ceb02bcb36993ef6833c2fc7809ade83cc99f8891cf74e08f70521cb58594',
                             'val': 'a2b7b82676a28a8b3842f2cb3bb9993df36e96e19eb7260d8ac7f9f36b085044',
                             'test': 'dbb2954eb32998ef3f475ab40ebeb5992508a3f3e9249a0eac8e4c32ea0bfd56'},
            'duplicates': {'train_val': 0,
                           'train_test': 0,
                           'val_test': 0,
                           'within_data': 0,
                           'conflicting_labels': 0},
            'split_info': {'sizes': {'train': 1257, 'val': 270, 'test': 270},
                           'fractions': {'train': 0.6995, 'val': 0.1503, 'test': 0.1503},
                           'requested': {'val': 0.15, 'test': 0.15},
                           'distinct_rows': {'train': 1257, 'val': 270, 'test': 270},
                           'seed': 42,
                           'stratified': True,
                           'class_counts': {'train': {'0': 124,
                                                      '1': 127,
                                                      '2': 123,
                                                      '3': 128,
                                                      '4': 127,
                                                      '5': 128,
                                                      '6': 127,
                                                      '7': 125,
                                                      '8': 122,
                                                      '9': 126},
                                            'val': {'0': 27,
                                                    '1': 28,
                                                    '2': 27,
                                                    '3': 27,
                                                    '4': 27,
                                                    '5': 27,
                                                    '6': 27,
                                                    '7': 27,
                                                    '8': 26,
                                                    '9': 27},
                                            'test': {'0': 27,
                                                     '1': 27,
                                                     '2': 27,
                                                     '3': 28,
                                                     '4': 27,
                                                     '5': 27,
                                                     '6': 27,
                                                     '7': 27,
                                                     '8': 26,
                                                     '9': 27}}}},
 'mixed': {'indices': {'train': 'b9a7dbf51a4d92c6',
                       'val': 'eec4a27b4dca0cd3',
                       'test': '3bf65a9ae7eab13e'},
           'X': {'train': '400190f2eb318aea',
                 'val': 'a8be1f63d64f43e5',
                 'test': 'b99937367326e74f'},
           'fingerprints': {'data': '13d59e3c1ed82961925185ae27637cac307d13eccf6e9092cbb0547ef373e1e6',
                            'train': '2d0b9ddf2c330737039c05d5c83b79ac98ece3727e61e12ef054a240e8480bfa',
                            'val': '7f6e91a22a41455e904ef964fb2a0e231b6435cebfaf319e9aabcf7ec771cf7a',
                            'test': 'a0441517bc38f8baeb17bd4d01d4df9381348dc9aa385a56e9eb4bd98a8141f7'},
           'duplicates': {'train_val': 0,
                          'train_test': 0,
                          'val_test': 0,
                          'within_data': 30,
                          'conflicting_labels': 10},
           'split_info': {'sizes': {'train': 231, 'val': 51, 'test': 48},
                          'fractions': {'train': 0.7, 'val': 0.1545, 'test': 0.1455},
                          'requested': {'val': 0.15, 'test': 0.15},
                          'distinct_rows': {'train': 210, 'val': 45, 'test': 45},
                          'seed': 42,
                          'stratified': True,
                          'class_counts': {'train': {'maybe': 71, 'no': 70, 'yes': 90},
                                           'val': {'maybe': 17, 'no': 14, 'yes': 20},
                                           'test': {'maybe': 15, 'no': 14, 'yes': 19}}}},
 'mixed-unstratified': {'indices': {'train': '64084dd0ef1fbb07',
                                    'val': 'b2c7cdabb15ebcd0',
                                    'test': '5e2257de15a71250'},
                        'X': {'train': '53c1d39d0a1062e5',
                              'val': '09ca16a3878a3196',
                              'test': 'db2feb475bb47f26'},
                        'fingerprints': {'data': '13d59e3c1ed82961925185ae27637cac307d13eccf6e9092cbb0547ef373e1e6',
                                         'train': '2a048e05b5ae12ba23a1e317da573ce66b47af19e0e83639cb386828ad924aae',
                                         'val': 'b0a3bbe243fb4e623d62b6d8db4dfe1082bb27706e85ebb3416b3b001eba7520',
                                         'test': '0e84b7957401f8742ff93510c2c983f0f950e5d966a0a836e49fa31f3fed6bcc'},
                        'duplicates': {'train_val': 0,
                                       'train_test': 0,
                                       'val_test': 0,
                                       'within_data': 30,
                                       'conflicting_labels': 10},
                        'split_info': {'sizes': {'train': 232, 'val': 64, 'test': 34},
                                       'fractions': {'train': 0.703,
                                                     'val': 0.1939,
                                                     'test': 0.103},
                                       'requested': {'val': 0.2, 'test': 0.1},
                                       'distinct_rows': {'train': 209, 'val': 61, 'test': 30},
                                       'seed': 7,
                                       'stratified': False,
                                       'class_counts': {'train': {'maybe': 71,
                                                                  'no': 64,
                                                                  'yes': 97},
                                                        'val': {'maybe': 25,
                                                                'no': 23,
                                                                'yes': 16},
                                                        'test': {'maybe': 7,
                                                                 'no': 11,
                                                                 'yes': 16}}}},
 'rare': {'indices': {'train': 'db37a3aea8009ebc',
                      'val': '1af3622f652e3a2a',
                      'test': '1172d385daf650d2'},
          'X': {'train': 'b5545bc67f696568',
                'val': 'f8fa5fbd1df45c8f',
                'test': '1184e3e2cab9cf58'},
          'fingerprints': {'data': 'c036a8550100b8bafdf53d9d5bcb87e653f3dbabad2aeac179b8cefea34c3dbb',
                           'train': 'f7fd15a5c1af410ae8c3069acc2c8a268e1d1e9540b8e16c2d67a15bf792e91c',
                           'val': '51b542f31f9cc41778f4d69b2943eb565a57c65cc074369e8d3bebd6e1149a7d',
                           'test': '2107baec109f665ad94e5e9a506a1ebc40fa21563c20bdd0e15c95af8fb8bb6e'},
          'duplicates': {'train_val': 0,
                         'train_test': 0,
                         'val_test': 0,
                         'within_data': 10,
                         'conflicting_labels': 10},
          'split_info': {'sizes': {'train': 26, 'val': 6, 'test': 8},
                         'fractions': {'train': 0.65, 'val': 0.15, 'test': 0.2},
                         'requested': {'val': 0.15, 'test': 0.15},
                         'distinct_rows': {'train': 20, 'val': 5, 'test': 5},
                         'seed': 42,
                         'stratified': False,
                         'stratify_note': 'stratification impossible (The least populated '
                                          'classes in y have only 1 member, which is too few. '
                                          'The minimum number of groups for any class cannot '
                                          'be less than 2. Classes with too few members are: '
                                          '[2]); split without it',
                         'class_counts': {'train': {'a': 14, 'b': 12, 'rare': 0},
                                          'val': {'a': 3, 'b': 3, 'rare': 0},
                                          'test': {'a': 3, 'b': 4, 'rare': 1}}}}}
PINNED_DIGESTS = '5f19efb676efa680'


@pytest.mark.parametrize("name", sorted(CASES))
def test_split_is_pinned_byte_for_byte(name: str, tmp_path: Path) -> None:
    assert observe(name, tmp_path) == PINNED[name]


def test_row_digests_are_pinned(tmp_path: Path) -> None:
    import pandas as pd

    mixed_csv(tmp_path / "m.csv")
    frame = pd.read_csv(tmp_path / "m.csv", keep_default_na=True)
    frame["flag"] = frame["count"] > 1
    frame["small"] = frame["count"].astype("int8")
    assert _sha(row_digests(frame)) == PINNED_DIGESTS
