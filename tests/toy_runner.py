"""A tiny model and dataset for the tests that need an mmengine Runner but no real data."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch.utils.data import Dataset


class ToyModel(BaseModel):
    """``y = fc(x)``, squared-error loss."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - labels)**2).mean())
        return out


class ToyData(Dataset):
    """8 samples ``x = (i, 1)``, label ``i * label_scale``."""

    def __init__(self, label_scale: float = 1.0):
        self.label_scale = label_scale

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.]),
                    labels=torch.tensor(float(i) * self.label_scale))
