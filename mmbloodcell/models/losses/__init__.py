# Modules register themselves on import; add one import line per module.
from .binary_losses import (BalancedBCELoss, BinaryFocalLoss, FocalHingeLoss,  # noqa: F401
                            HingeLoss, WeightedBCELoss)
