"""The model and each node's share of the embedded digits dataset (fedsecure.fl)."""

from __future__ import annotations

from functools import cache

import torch

from fedsecure.fl.data import load_dataset, partition
from fedsecure.fl.model import build_model

CLIP = 8.0  # bound on any model weight: the fixed-point range of the secure sum


@cache
def dataset():
    return load_dataset("digits", seed=0)


def new_model():
    data = dataset()
    return build_model("logistic", data.n_features, data.n_classes, seed=0)


def node_data(partition_id: int, num_partitions: int):
    data = dataset()
    part = partition(data.y_train, num_partitions, scheme="dirichlet", alpha=1.0, seed=0)[partition_id]
    return torch.from_numpy(data.x_train[part]), torch.from_numpy(data.y_train[part])


def test_data():
    data = dataset()
    return torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
