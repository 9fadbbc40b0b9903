"""Weights shipped with egg: the task-driven core's rotation-trained resnet18 trunk (scripts/train_backbone.py)."""
