"""measure_throughput: the paper's protocol on a tiny configuration."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ispad_core.nn import Throughput, measure_throughput, resnet18_classifier  # noqa: E402
from ispad_core.nn import throughput  # noqa: E402
from tests.nn._helpers import TinyNet  # noqa: E402

pytestmark = pytest.mark.torch


class CountingNet(TinyNet):
    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append((tuple(x.shape), x.dtype, torch.is_inference_mode_enabled(), self.training))
        return super().forward(x)


def test_protocol_counts_and_fields(monkeypatch):
    # A clock that makes the three timed cycles last 0.5 s, 1 s and 2 s: the statistics are then
    # known in advance instead of recomputed from what the function returned.
    ticks = iter([10.0, 10.5, 20.0, 21.0, 30.0, 32.0])
    monkeypatch.setattr(throughput, "_clock", lambda: next(ticks))
    net = CountingNet()
    t = measure_throughput(net, batch_size=4, warmup=2, cycles=3, reps=5, device="cpu", amp=False, patch_size=16)
    assert isinstance(t, Throughput)
    assert len(net.calls) == 3 * (2 + 5)
    assert all(c == ((4, 1, 16, 16), torch.float32, True, False) for c in net.calls)
    assert net.training  # mode restored
    assert t.per_cycle == (40.0, 20.0, 10.0)  # 4 x 5 patches per cycle
    assert t.patches_per_s == pytest.approx(70 / 3)
    assert t.patches_per_s_std == pytest.approx(np.sqrt(((40 - 70 / 3) ** 2 + (20 - 70 / 3) ** 2 + (10 - 70 / 3) ** 2) / 2))
    assert t.ms_per_patch == pytest.approx((25 + 50 + 100) / 3)
    assert t.ms_per_patch_std == pytest.approx(np.std([25, 50, 100], ddof=1))
    assert t.precision == "fp32" and t.timer == "perf_counter" and t.input_shape == (1, 16, 16)
    assert t.to_dict()["per_cycle"] == list(t.per_cycle)
    assert "patches/s" in str(t) and "ms/patch" in str(t)


def test_bf16_autocast_and_channels_last_on_cpu():
    model = resnet18_classifier(in_channels=3)
    t = measure_throughput(model, batch_size=2, warmup=1, cycles=1, reps=1, device="cpu", amp=True,
                           patch_size=32, channels_last=True, preprocess=None)
    assert t.precision == "bf16" and t.channels_last and not t.preprocess and t.patches_per_s_std == 0.0
    assert model.conv1.weight.is_contiguous()  # memory format restored


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size: expected an int >= 1, got 0"),
        ({"cycles": 0}, ValueError, "cycles: expected an int >= 1, got 0"),
        ({"reps": 1.5}, TypeError, "reps: expected an int, got float"),
        ({"warmup": -1}, ValueError, "warmup: expected an int >= 0, got -1"),
        ({"amp": None}, TypeError, "amp: expected a bool, got NoneType"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        measure_throughput(TinyNet(), **{"device": "cpu", **kwargs})


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module, got str"):
        measure_throughput("resnet", device="cpu")
