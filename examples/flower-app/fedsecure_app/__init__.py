"""Flower app: FedAvg on digits, aggregated by fedsecure."""
