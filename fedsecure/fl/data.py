"""Datasets and client partitions for federated training.

Built-in datasets need no download: scikit-learn's bundled ``digits`` (8x8 handwritten digits,
10 classes, the default) and ``breast_cancer`` (30 features, 2 classes).  User data is read from
CSV, NumPy ``.npz`` / ``.npy`` files, torchvision-style image folders (``root/<class>/*.png``) and
MNIST IDX files.  A dataset spec is one string::

    digits | breast_cancer | csv:PATH | npz:PATH | npy:FEATURES.npy,LABELS.npy
    | images:ROOT | idx:IMAGES_FILE,LABELS_FILE

Every dataset is split into train and test sets with a seed (stratified when every class has at
least two samples) and its features are standardized with the training set's statistics.
The training set is then partitioned into clients: IID, label skew drawn from a Dirichlet
distribution with concentration ``alpha`` (smaller is more skewed), or quantity skew (client sizes
drawn from Dirichlet(alpha)).  Every client gets at least one sample.
"""

from __future__ import annotations

import csv
import gzip
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedsecure.config import require
from fedsecure.errors import ConfigurationError

BUILTIN_DATASETS = ("digits", "breast_cancer")
FILE_DATASETS = ("csv", "npz", "npy", "images", "idx")
PARTITIONS = ("iid", "dirichlet", "quantity")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Dataset:
    """A standardized train/test split; labels are integers 0..n_classes-1."""

    name: str
    x_train: np.ndarray  # float32, (n_train, n_features)
    y_train: np.ndarray  # int64, (n_train,)
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    class_names: tuple[str, ...]

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])


# --------------------------------------------------------------------------- spec parsing


def check_dataset_spec(spec: str) -> None:
    """Validate the form of a dataset spec (kind and paths present) without reading data."""
    kind, paths = _split_spec(spec)
    for path in paths:
        require(Path(path).exists(), "dataset", spec, f"file or folder {path!r} does not exist")
    if kind in ("npy", "idx"):
        require(len(paths) == 2, "dataset", spec,
                f"{kind}: needs two paths, features and labels, separated by a comma")
    elif kind in FILE_DATASETS:
        require(len(paths) == 1, "dataset", spec, f"{kind}: takes one path")


def _split_spec(spec: str) -> tuple[str, list[str]]:
    require(isinstance(spec, str) and spec != "", "dataset", spec, "must be a non-empty string")
    if spec in BUILTIN_DATASETS:
        return spec, []
    kind, sep, rest = spec.partition(":")
    require(sep == ":" and kind in FILE_DATASETS and rest != "", "dataset", spec,
            f"must be one of {list(BUILTIN_DATASETS)} or KIND:PATH with KIND in"
            f" {list(FILE_DATASETS)}")
    return kind, rest.split(",")


def load_dataset(spec: str = "digits", *, seed: int = 0, test_fraction: float = 0.2,
                 label_column: str | int | None = None) -> Dataset:
    """Load ``spec`` (see the module docstring), split it with ``seed`` and standardize it."""
    require(0.0 < test_fraction < 1.0, "test_fraction", test_fraction, "must be in (0, 1)")
    check_dataset_spec(spec)
    kind, paths = _split_spec(spec)
    if label_column is not None:
        require(kind == "csv", "label_column", label_column, "applies to csv datasets only")
    if kind == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y, names = bunch.data, bunch.target, [str(c) for c in bunch.target_names]
    elif kind == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer()
        x, y, names = bunch.data, bunch.target, [str(c) for c in bunch.target_names]
    else:
        x, y, names = _read_files(spec, kind, paths, label_column)
    return split_and_standardize(spec, x, y, names, seed=seed, test_fraction=test_fraction)


def _read_files(spec: str, kind: str, paths: list[str], label_column):
    """Features, labels and class names from the user's files; a file that cannot be read as
    ``kind`` is one ConfigurationError naming the dataset (never a loader's own advice, such
    as NumPy's to allow pickles)."""
    try:
        if kind == "csv":
            return load_csv(paths[0], label_column=label_column)
        if kind == "npz":
            return load_npz(paths[0])
        if kind == "npy":
            return load_npy(paths[0], paths[1])
        if kind == "images":
            return load_image_folder(paths[0])
        return load_idx_pair(paths[0], paths[1])
    except ConfigurationError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigurationError(
            f"dataset={spec!r}: cannot be read as {kind} data ({type(exc).__name__}); check"
            " the file (docs/training.md#datasets lists the formats)") from None


def split_and_standardize(name: str, x, y, class_names, *, seed: int,
                          test_fraction: float) -> Dataset:
    """Seeded (stratified when possible) train/test split; features standardized on train."""
    from sklearn.model_selection import train_test_split

    try:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    except (TypeError, ValueError):
        raise ConfigurationError(f"dataset={name!r}: features are not numeric") from None
    y = np.asarray(y, dtype=np.int64)
    require(len(x) == len(y), "dataset", name,
            f"{len(x)} feature rows but {len(y)} labels")
    n_test = int(np.ceil(test_fraction * len(y)))
    require(len(y) - n_test >= 1 and n_test >= 1, "dataset", name,
            f"{len(y)} samples are too few to split with test_fraction={test_fraction}")
    require(np.all(np.isfinite(x)), "dataset", name, "features contain NaN or infinity")
    counts = np.bincount(y)
    n_labels = np.count_nonzero(counts)
    stratify = (y if counts[counts > 0].min() >= 2 and min(n_test, len(y) - n_test) >= n_labels
                else None)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=n_test, random_state=seed, stratify=stratify)
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    return Dataset(
        name=name,
        x_train=((x_train - mean) / std).astype(np.float32),
        y_train=y_train,
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=y_test,
        n_classes=len(class_names),
        class_names=tuple(class_names),
    )


def _encode_labels(raw, source: str) -> tuple[np.ndarray, list[str]]:
    """Map labels to codes 0..k-1 in sorted order; the original values become class names."""
    raw = np.asarray(raw).ravel()
    require(raw.dtype.kind in "biufUS", "dataset", source, f"labels of dtype {raw.dtype}")
    if raw.dtype.kind == "f":
        require(bool(np.all(raw == np.round(raw))), "dataset", source,
                "labels must be integers or strings, found fractional values")
        raw = raw.astype(np.int64)
    values, codes = np.unique(raw, return_inverse=True)
    return codes.astype(np.int64), [str(v) for v in values]


# --------------------------------------------------------------------------- loaders


def load_csv(path, *, label_column: str | int | None = None):
    """Numeric features from a CSV file; the label is the last column, or ``label_column``
    (a header name, or a 0-based index).  A first row that is not all numbers is a header."""
    path = Path(path)
    with path.open(newline="") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    require(len(rows) >= 1, "dataset", f"csv:{path}", "the file is empty")
    header = None
    if not all(_is_number(cell) for cell in rows[0] if cell.strip()):
        header, rows = [cell.strip() for cell in rows[0]], rows[1:]
    require(len(rows) >= 2, "dataset", f"csv:{path}", "needs at least two data rows")
    width = len(rows[0])
    require(width >= 2, "dataset", f"csv:{path}", "needs a feature column and a label column")
    if label_column is None:
        label_index = width - 1
    elif isinstance(label_column, int) or str(label_column).lstrip("-").isdigit():
        label_index = int(label_column)
        require(-width <= label_index < width, "label_column", label_column,
                f"the file has {width} columns")
        label_index %= width
    else:
        require(header is not None and label_column in header, "label_column", label_column,
                f"not a column of {path} (header: {header})")
        label_index = header.index(label_column)
    features, labels = [], []
    for number, row in enumerate(rows, start=2 if header else 1):
        require(len(row) == width, "dataset", f"csv:{path}",
                f"line {number} has {len(row)} columns, expected {width}")
        cells = [cell.strip() for i, cell in enumerate(row) if i != label_index]
        for cell in cells:
            require(_is_number(cell), "dataset", f"csv:{path}",
                    f"line {number}: feature {cell!r} is not a number")
        features.append([float(cell) for cell in cells])
        labels.append(row[label_index].strip())
    label_array = np.array(labels)
    if all(_is_number(v) for v in labels):
        label_array = np.array([float(v) for v in labels])
    y, names = _encode_labels(label_array, f"csv:{path}")
    return np.array(features), y, names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_npz(path):
    """Arrays ``x`` and ``y`` (or ``X``/``y``, ``features``/``labels``) from an ``.npz`` file."""
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        for xk, yk in (("x", "y"), ("X", "y"), ("features", "labels")):
            if {xk, yk} <= keys:
                x, raw = archive[xk], archive[yk]
                break
        else:
            raise ConfigurationError(
                f"dataset='npz:{path}': needs arrays named x and y (or X/y, features/labels);"
                f" found {sorted(keys)}")
    y, names = _encode_labels(raw, f"npz:{path}")
    return x, y, names


def load_npy(features_path, labels_path):
    """Features and labels from two ``.npy`` files."""
    x = np.load(features_path, allow_pickle=False)
    y, names = _encode_labels(np.load(labels_path, allow_pickle=False), f"npy:{labels_path}")
    return x, y, names


def load_image_folder(root):
    """A torchvision-style folder: ``root/<class name>/<image>``; pixels scaled to [0, 1].

    Images are read with Pillow as grayscale if every image is, else as RGB; all must have
    the same size.
    """
    from PIL import Image

    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    require(classes != [], "dataset", f"images:{root}", "has no class sub-folders")
    files = [(path, label) for label, name in enumerate(classes)
             for path in sorted((root / name).iterdir())
             if path.suffix.lower() in IMAGE_SUFFIXES]
    require(files != [], "dataset", f"images:{root}", f"holds no images ({IMAGE_SUFFIXES})")
    images = [Image.open(path) for path, _ in files]
    mode = "L" if all(img.mode in ("L", "1", "I", "I;16") for img in images) else "RGB"
    size = images[0].size
    pixels = []
    for (path, _), img in zip(files, images, strict=True):
        require(img.size == size, "dataset", f"images:{root}",
                f"{path} is {img.size[0]}x{img.size[1]}, others are {size[0]}x{size[1]}")
        pixels.append(np.asarray(img.convert(mode), dtype=np.float64).ravel() / 255.0)
        img.close()
    return np.stack(pixels), np.array([label for _, label in files], dtype=np.int64), classes


_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """One IDX file (the MNIST format; ``.gz`` compressed or not) as an array."""
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    require(len(data) >= 4 and data[:2] == b"\x00\x00" and data[2] in _IDX_DTYPES,
            "dataset", f"idx:{path}", "not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    require(len(data) >= header, "dataset", f"idx:{path}", "truncated header")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    count = int(np.prod(shape)) if shape else 1
    require(len(data) == header + count * dtype.itemsize, "dataset", f"idx:{path}",
            f"holds {len(data) - header} data bytes, the header {shape} needs"
            f" {count * dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def load_idx_pair(images_path, labels_path):
    """MNIST-style images and labels IDX files; pixels scaled by their dtype's maximum."""
    x = read_idx(images_path)
    raw = read_idx(labels_path)
    require(len(x) == len(raw), "dataset", f"idx:{images_path},{labels_path}",
            f"{len(x)} images but {len(raw)} labels")
    if x.dtype == np.uint8:
        x = x / 255.0
    y, names = _encode_labels(raw, f"idx:{labels_path}")
    return x, y, names


# --------------------------------------------------------------------------- partitions


def partition(labels, n_clients: int, *, scheme: str = "dirichlet", alpha: float = 0.5,
              seed: int = 0) -> list[np.ndarray]:
    """Split sample indices ``0..len(labels)-1`` into ``n_clients`` non-empty, disjoint parts."""
    labels = np.asarray(labels)
    n = len(labels)
    require(scheme in PARTITIONS, "partition", scheme, f"must be one of {list(PARTITIONS)}")
    require(isinstance(n_clients, int) and n_clients >= 1, "clients", n_clients,
            "must be an integer >= 1")
    require(n_clients <= n, "clients", n_clients,
            f"more clients than the {n} training samples; every client needs at least one")
    require(alpha > 0 and np.isfinite(alpha), "alpha", alpha, "must be a finite number > 0")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x9A57,)))
    if scheme == "iid":
        parts = np.array_split(rng.permutation(n), n_clients)
    elif scheme == "quantity":
        shares = rng.dirichlet(np.full(n_clients, alpha))
        sizes = 1 + _apportion(n - n_clients, shares)
        parts = np.split(rng.permutation(n), np.cumsum(sizes)[:-1])
    else:
        parts = _dirichlet_label_skew(labels, n_clients, alpha, rng)
    return [np.sort(part).astype(np.int64) for part in parts]


def _apportion(total: int, shares: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` proportional to ``shares`` (largest remainders)."""
    exact = shares * total
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    counts[np.argsort(counts - exact, kind="stable")[:short]] += 1
    return counts


def _dirichlet_label_skew(labels, n_clients, alpha, rng) -> list[np.ndarray]:
    parts: list[list[int]] = [[] for _ in range(n_clients)]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        counts = _apportion(len(members), rng.dirichlet(np.full(n_clients, alpha)))
        for client, chunk in enumerate(np.split(members, np.cumsum(counts)[:-1])):
            parts[client].extend(chunk.tolist())
    # A client the draw left empty takes one sample from the largest client.
    for client in range(n_clients):
        if not parts[client]:
            donor = max(range(n_clients), key=lambda c: len(parts[c]))
            parts[client].append(parts[donor].pop(int(rng.integers(len(parts[donor])))))
    return [np.array(part, dtype=np.int64) for part in parts]


def label_histograms(labels, parts, n_classes: int) -> np.ndarray:
    """(clients, classes) counts of each label in each part."""
    labels = np.asarray(labels)
    return np.stack([np.bincount(labels[p], minlength=n_classes) for p in parts])


def matching_test_split(train_hist: np.ndarray, test_labels, *, seed: int = 0
                        ) -> list[np.ndarray]:
    """Give each client a disjoint share of the test set with its training label mix.

    Test samples of class c are divided among clients in proportion to how many training
    samples of class c each holds (the usual way to evaluate personalized models).  A client
    may receive no test samples if it is tiny.
    """
    test_labels = np.asarray(test_labels)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0x7E57,)))
    parts: list[list[int]] = [[] for _ in range(train_hist.shape[0])]
    for label in range(train_hist.shape[1]):
        members = rng.permutation(np.flatnonzero(test_labels == label))
        column = train_hist[:, label].astype(np.float64)
        if column.sum() == 0 or len(members) == 0:
            continue
        counts = _apportion(len(members), column / column.sum())
        for client, chunk in enumerate(np.split(members, np.cumsum(counts)[:-1])):
            parts[client].extend(chunk.tolist())
    return [np.sort(np.array(part, dtype=np.int64)) for part in parts]
