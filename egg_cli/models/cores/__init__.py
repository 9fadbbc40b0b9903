"""Cores: image (B,C,H,W) -> feature map (B,C',H',W') shared by all neurons."""

from egg_cli.models.cores.stacked import StackedConvCore, laplace_smoothness
from egg_cli.models.cores.task_driven import TaskDrivenCore

__all__ = ["StackedConvCore", "TaskDrivenCore", "laplace_smoothness"]
