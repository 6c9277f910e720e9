"""Federated training with torch: datasets and partitions, local training, FedAvg/FedProx loops.

Layers inside: ``data`` and ``model`` (no federation), ``client`` (local training),
``server`` (sampling and aggregation through :mod:`fedsecure.protocols.base`),
``federation`` (a prepared run), ``loop`` (rounds, checkpoints, resume) and ``personalize``
(both on a federation, neither importing the other), ``rundir`` (files), ``report``
(progress lines, failed runs), ``config`` and ``cli``.
Needs the ``train`` extra (torch, scikit-learn, matplotlib).
"""
