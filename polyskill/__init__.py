"""polyskill: one model, many skills. Meta-learning and multi-task learning on PyTorch."""
__version__ = "0.1.0"
