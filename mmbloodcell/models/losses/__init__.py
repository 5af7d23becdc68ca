# Modules register themselves on import; add one import line per module.
from .binary_losses import (BinaryFocalLoss, FocalHingeLoss, HingeLoss,  # noqa: F401
                            WeightedBCELoss)
