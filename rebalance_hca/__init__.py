"""ReBalance-HCA: scene graph generation on PyTorch + torchvision, pure Python."""
__version__ = "0.1.0"
