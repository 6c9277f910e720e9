"""Federated training with torch: datasets and partitions, local training, FedAvg/FedProx loops.

Layers inside: ``data`` and ``model`` (no federation), ``client`` (local training),
``server`` (sampling and aggregation through :mod:`fedsecure.protocols.base`), ``loop``
(rounds, checkpoints, resume), ``personalize``, ``rundir`` (files), ``config`` and ``cli``.
Needs the ``train`` extra (torch, scikit-learn, matplotlib).
"""
