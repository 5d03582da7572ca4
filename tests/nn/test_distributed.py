"""torch.distributed: DistributedSampler over InjectionDataset and train under DDP (gloo, 2 CPU processes)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

pytestmark = [
    pytest.mark.torch,
    pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo"),
]

N, EPOCH, WORLD = 96, 2, 2


def _dataset():
    from ispad_core.nn import InjectionDataset
    from tests.nn._helpers import bright_spot_data

    images, labels = bright_spot_data(N, seed=0)
    real = bright_spot_data(6, seed=1, defect_fraction=1.0)[0]
    ds = InjectionDataset(list(zip(images, labels)), real, p_inj=0.25, batch_size=8, seed=3)
    ds.set_epoch(EPOCH)
    return ds


def _worker(rank, out_dir):
    from torch.utils.data import DataLoader, DistributedSampler

    from ispad_core.nn import predict, train
    from tests.nn._helpers import TinyNet, bright_spot_data

    ds = _dataset()
    sampler = DistributedSampler(ds, num_replicas=WORLD, rank=rank, shuffle=True, seed=7)
    sampler.set_epoch(EPOCH)
    loader = DataLoader(ds, batch_size=8, sampler=sampler)
    images, labels = zip(*loader)
    torch.manual_seed(0)
    model = TinyNet()
    va = bright_spot_data(41, seed=2)  # odd length: the validation shards differ in size
    res = train(model, ds, va, max_epochs=2, batch_size=8, lr=0.05, preprocess=None, verbose=False)
    torch.save(
        {
            "indices": list(sampler),
            "images": torch.cat(images),
            "labels": torch.cat(labels),
            "world_size": res.world_size,
            "weights": model.state_dict(),
            "val_losses": [r.val_loss for r in res.history],
            "local_best_loss": predict(model, va, preprocess=None).loss,
            "best_val_loss": res.best_val_loss,
        },
        f"{out_dir}/rank{rank}.pt",
    )


@pytest.mark.slow
def test_ranks_see_disjoint_items_and_train_runs_under_ddp(tmp_path):
    import torch.multiprocessing as mp

    from tests.nn._helpers import gloo_worker

    mp.spawn(gloo_worker, args=(_worker, str(tmp_path / "init"), WORLD, str(tmp_path)), nprocs=WORLD, join=True)
    out = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]

    # disjoint indices whose union is the whole stream
    a, b = (set(o["indices"]) for o in out)
    assert not a & b and a | b == set(range(N))
    # each rank's items are exactly the single-process items at those indices
    ds = _dataset()
    for o in out:
        for k, i in enumerate(o["indices"]):
            image, label = ds[i]
            assert np.array_equal(o["images"][k].numpy(), image) and int(o["labels"][k]) == label

    # DDP: both ranks trained on different shards yet end with identical weights and records
    assert all(o["world_size"] == WORLD for o in out)
    for key, value in out[0]["weights"].items():
        assert torch.equal(value, out[1]["weights"][key]), key
    assert out[0]["val_losses"] == out[1]["val_losses"]
    # the sharded, gathered validation equals a single-process pass over the whole set
    for o in out:
        assert o["best_val_loss"] == pytest.approx(o["local_best_loss"], rel=1e-5)
