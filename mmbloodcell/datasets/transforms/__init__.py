# Modules register themselves on import; add one import line per module.
from .noise import GaussianNoise, RandomGaussianBlur  # noqa: F401
