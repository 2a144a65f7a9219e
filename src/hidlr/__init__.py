"""hidlr: Hessian-informed differential learning rates for PyTorch, and uncertainty-aware regression."""

__version__ = "0.1.0"
