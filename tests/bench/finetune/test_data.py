import torch

from hidlr.bench.finetune.data import length_batches


def test_length_batches_cover_every_token_once_per_epoch_with_little_padding(small_workload):
    part = small_workload.train
    it = length_batches(part, 16, seed=0)
    n_batches = -(-len(part) // 16)
    epoch = [next(it) for _ in range(n_batches)]
    seen = torch.cat(epoch)
    assert sorted(seen.tolist()) == list(range(len(part)))
    lengths = part.x.mask.sum(1)
    spread = [int(lengths[b].max() - lengths[b].min()) for b in epoch]
    assert sorted(spread)[len(spread) // 2] <= 1  # most batches hold one or two lengths
    again = length_batches(part, 16, seed=0)
    assert all(torch.equal(next(again), b) for b in epoch)  # seeded
    trimmed = part.take(epoch[0])
    assert trimmed.x.ids.shape[1] == int(lengths[epoch[0]].max())
