"""Factory backbones for the tests: importable as ``tests.nn._factory:<name>``.

``classifier("tests.nn._factory:small_cnn", in_channels=1, num_classes=2, width=4)`` calls
``small_cnn(in_channels=1, num_classes=2, dropout=0.1, width=4)``, the calling convention of
factory backbones.
"""

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


class SmallCNN(nn.Module):
    """Conv -> BN -> ReLU -> global mean -> dropout -> linear; ``width`` channels."""

    def __init__(self, in_channels, num_classes, dropout, width):
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
        return self.fc(self.drop(h))


def small_cnn(*, in_channels, num_classes, dropout, width=8):
    """A :class:`SmallCNN`: the smallest useful factory backbone."""
    return SmallCNN(in_channels, num_classes, dropout, width)


def not_a_module(*, in_channels, num_classes, dropout):
    """A broken factory: returns no module."""
    return "a string"


CALLS = []
"""Arguments of every call of :func:`counting_factory`, to show whether a load ran it."""


def counting_factory(*, in_channels, num_classes, dropout, width=8):
    """:func:`small_cnn` that records its calls in :data:`CALLS`."""
    CALLS.append({"in_channels": in_channels, "num_classes": num_classes, "dropout": dropout, "width": width})
    return small_cnn(in_channels=in_channels, num_classes=num_classes, dropout=dropout, width=width)
