"""Hyperparameter sweeps: job bookkeeping for Hydra multirun (``jobs``) and result collection (``collect``)."""
