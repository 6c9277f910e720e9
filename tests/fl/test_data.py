"""Datasets, loaders for user files, and client partitions."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is not installed (extra: train)")
pytestmark = pytest.mark.train

from fedsecure.errors import ConfigurationError  # noqa: E402
from fedsecure.fl.data import (  # noqa: E402
    label_histograms,
    load_csv,
    load_dataset,
    matching_test_split,
    partition,
    read_idx,
)

# --------------------------------------------------------------------------- built-in datasets


def test_digits_split_is_seeded_stratified_and_standardized():
    a = load_dataset("digits", seed=3, test_fraction=0.25)
    b = load_dataset("digits", seed=3, test_fraction=0.25)
    c = load_dataset("digits", seed=4, test_fraction=0.25)
    assert a.x_train.shape[1] == a.n_features == 64 and a.n_classes == 10
    assert len(a.y_train) + len(a.y_test) == 1797
    assert len(a.y_test) == int(np.ceil(0.25 * 1797))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_test, c.y_test)
    # stratified: each class's share of the test set matches its share of the data
    share_test = np.bincount(a.y_test) / len(a.y_test)
    share_train = np.bincount(a.y_train) / len(a.y_train)
    assert np.abs(share_test - share_train).max() < 0.01
    # standardized on the training set (constant pixels stay 0)
    assert np.abs(a.x_train.mean(axis=0)).max() < 1e-4
    std = a.x_train.std(axis=0)
    assert np.all((np.abs(std - 1) < 1e-3) | (std == 0))
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64


def test_breast_cancer_is_binary():
    ds = load_dataset("breast_cancer")
    assert ds.n_classes == 2 and ds.n_features == 30
    assert ds.class_names == ("malignant", "benign")


@pytest.mark.parametrize("spec", ["mnist", "csv:", "csv:/no/such/file.csv", "npy:one.npy"])
def test_bad_dataset_specs_are_named(spec, tmp_path):
    if spec == "npy:one.npy":
        np.save(tmp_path / "one.npy", np.zeros(3))
        spec = f"npy:{tmp_path / 'one.npy'}"
    with pytest.raises(ConfigurationError, match=r"^dataset="):
        load_dataset(spec)


# --------------------------------------------------------------------------- partitions


def _total_variation_from_global(labels, parts, n_classes=10):
    hist = label_histograms(labels, parts, n_classes).astype(float)
    local = hist / hist.sum(axis=1, keepdims=True)
    overall = np.bincount(labels, minlength=n_classes) / len(labels)
    return 0.5 * np.abs(local - overall).sum(axis=1).mean()


@pytest.fixture(scope="module")
def digit_labels():
    return load_dataset("digits").y_train


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "quantity"])
def test_partitions_are_disjoint_covering_and_non_empty(scheme, digit_labels):
    parts = partition(digit_labels, 10, scheme=scheme, alpha=0.3, seed=1)
    assert len(parts) == 10 and all(len(p) >= 1 for p in parts)
    joined = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(joined), np.arange(len(digit_labels)))
    again = partition(digit_labels, 10, scheme=scheme, alpha=0.3, seed=1)
    assert all(np.array_equal(p, q) for p, q in zip(parts, again, strict=True))


def test_iid_sizes_are_balanced_and_labels_mixed(digit_labels):
    parts = partition(digit_labels, 7, scheme="iid", seed=0)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    assert _total_variation_from_global(digit_labels, parts) < 0.15


def test_dirichlet_label_skew_grows_as_alpha_shrinks(digit_labels):
    skew = {alpha: _total_variation_from_global(
        digit_labels, partition(digit_labels, 10, scheme="dirichlet", alpha=alpha, seed=0))
        for alpha in (0.05, 0.5, 100.0)}
    iid = _total_variation_from_global(digit_labels, partition(digit_labels, 10, scheme="iid"))
    assert skew[0.05] > 0.6 > skew[0.5] > 0.25 > skew[100.0]
    assert abs(skew[100.0] - iid) < 0.1


def test_quantity_skew_varies_sizes_not_labels(digit_labels):
    parts = partition(digit_labels, 10, scheme="quantity", alpha=0.5, seed=0)
    sizes = np.array([len(p) for p in parts])
    assert sizes.std() / sizes.mean() > 0.4
    big = [p for p in parts if len(p) >= 100]
    assert _total_variation_from_global(digit_labels, big) < 0.2


def test_every_client_gets_a_sample_even_under_extreme_skew():
    labels = np.repeat(np.arange(3), 20)  # 60 samples, 3 classes
    for scheme in ("dirichlet", "quantity"):
        parts = partition(labels, 60, scheme=scheme, alpha=0.01, seed=2)
        assert sorted(len(p) for p in parts) == [1] * 60


def test_more_clients_than_samples_is_a_clear_error():
    with pytest.raises(ConfigurationError, match=r"^clients=11: .*10 training samples"):
        partition(np.zeros(10, dtype=int), 11)


@pytest.mark.parametrize("kwargs, option", [({"scheme": "shards"}, "partition"),
                                            ({"alpha": 0.0}, "alpha"),
                                            ({"alpha": float("nan")}, "alpha")])
def test_bad_partition_options_are_named(kwargs, option):
    with pytest.raises(ConfigurationError, match=rf"^{option}="):
        partition(np.zeros(10, dtype=int), 2, **kwargs)


def test_matching_test_split_follows_each_clients_label_mix():
    train_labels = np.array([0] * 30 + [1] * 10 + [2] * 20)
    parts = [np.arange(0, 30), np.arange(30, 40), np.arange(40, 60)]  # one class each
    test_labels = np.array([0, 1, 2] * 10)
    hist = label_histograms(train_labels, parts, 3)
    test_parts = matching_test_split(hist, test_labels, seed=0)
    for client, part in enumerate(test_parts):
        assert len(part) == 10 and set(test_labels[part]) == {client}
    mixed = matching_test_split(np.array([[3, 1], [1, 3]]), np.array([0] * 8 + [1] * 8))
    assert [np.bincount(np.array([0] * 8 + [1] * 8)[p], minlength=2).tolist()
            for p in mixed] == [[6, 2], [2, 6]]


# --------------------------------------------------------------------------- loaders


def _write(path, text):
    path.write_text(text)
    return path


def test_csv_with_header_string_labels_and_named_column(tmp_path):
    path = _write(tmp_path / "d.csv", "kind,a,b\ncat,1,2\ndog,3,4\ncat,5,6\nbird,7,8\n")
    x, y, names = load_csv(path, label_column="kind")
    np.testing.assert_array_equal(x, [[1, 2], [3, 4], [5, 6], [7, 8]])
    assert names == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(y, [1, 2, 1, 0])
    x0, y0, _ = load_csv(path, label_column="0")
    np.testing.assert_array_equal(y0, y)


def test_csv_without_header_takes_last_column_as_label(tmp_path):
    rows = "\n".join(f"{i},{i * 0.5},{i % 3}" for i in range(12))
    ds = load_dataset(f"csv:{_write(tmp_path / 'd.csv', rows)}", test_fraction=0.25, seed=0)
    assert ds.n_features == 2 and ds.n_classes == 3
    assert len(ds.y_train) == 9 and len(ds.y_test) == 3
    assert ds.class_names == ("0", "1", "2")


@pytest.mark.parametrize("text, message", [
    ("1,2,0\n3,x,1\n4,5,0\n", "line 2: feature 'x' is not a number"),
    ("1,2,0\n3,1\n4,5,0\n", "line 2 has 2 columns, expected 3"),
    ("1,2,0.5\n3,4,1\n", "fractional"),
])
def test_csv_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigurationError, match=message):
        load_csv(_write(tmp_path / "bad.csv", text))


def test_csv_unknown_label_column(tmp_path):
    path = _write(tmp_path / "d.csv", "a,b\n1,0\n2,1\n")
    with pytest.raises(ConfigurationError, match=r"^label_column='c'"):
        load_csv(path, label_column="c")


def test_npz_and_npy_loaders(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    y = np.array(["a", "b"] * 10)
    np.savez(tmp_path / "d.npz", X=x, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}", test_fraction=0.2)
    assert ds.n_features == 3 and ds.class_names == ("a", "b") and len(ds.y_test) == 4
    np.save(tmp_path / "x.npy", x.reshape(20, 3, 1))
    np.save(tmp_path / "y.npy", np.arange(20) % 4)
    ds = load_dataset(f"npy:{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}", test_fraction=0.2)
    assert ds.n_features == 3 and ds.n_classes == 4
    np.savez(tmp_path / "wrong.npz", a=x, b=y)
    with pytest.raises(ConfigurationError, match="needs arrays named x and y"):
        load_dataset(f"npz:{tmp_path / 'wrong.npz'}")


def test_image_folder_loader(tmp_path):
    from PIL import Image

    for label, shade in (("cats", 40), ("dogs", 200)):
        (tmp_path / label).mkdir()
        for i in range(4):
            pixels = np.full((5, 6), shade + i, dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / label / f"{i}.png")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    ds = load_dataset(f"images:{tmp_path}", test_fraction=0.25, seed=0)
    assert ds.class_names == ("cats", "dogs")
    assert ds.n_features == 30 and len(ds.y_train) + len(ds.y_test) == 8
    # standardized pixels separate the two shades by label
    assert np.all((ds.x_train.mean(axis=1) > 0) == (ds.y_train == 1))
    Image.fromarray(np.zeros((7, 6), dtype=np.uint8)).save(tmp_path / "cats" / "big.png")
    with pytest.raises(ConfigurationError, match="big.png is 6x7, others are 6x5"):
        load_dataset(f"images:{tmp_path}")


def _idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_mnist_idx_files_plain_and_gzipped(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(12, 4, 4), dtype=np.uint8)
    labels = (np.arange(12) % 3).astype(np.uint8)
    (tmp_path / "images-idx3-ubyte").write_bytes(_idx_bytes(images, 0x08))
    (tmp_path / "labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels, 0x08)))
    np.testing.assert_array_equal(read_idx(tmp_path / "images-idx3-ubyte"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels-idx1-ubyte.gz"), labels)
    floats = rng.normal(size=(3, 2)).astype(np.float32)
    (tmp_path / "f.idx").write_bytes(_idx_bytes(floats, 0x0D))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), floats)
    ds = load_dataset(f"idx:{tmp_path / 'images-idx3-ubyte'},{tmp_path / 'labels-idx1-ubyte.gz'}",
                      test_fraction=0.25)
    assert ds.n_features == 16 and ds.n_classes == 3 and len(ds.y_test) == 3


@pytest.mark.parametrize("data, message", [(b"\x08\x03\x00\x01", "bad magic"),
                                           (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01", "holds 1")])
def test_idx_errors(tmp_path, data, message):
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(ConfigurationError, match=message):
        read_idx(tmp_path / "bad")


def test_non_numeric_npz_features_are_refused(tmp_path):
    np.savez(tmp_path / "s.npz", x=np.array([["a", "b"]] * 6), y=np.arange(6) % 2)
    with pytest.raises(ConfigurationError, match="features are not numeric"):
        load_dataset(f"npz:{tmp_path / 's.npz'}")
