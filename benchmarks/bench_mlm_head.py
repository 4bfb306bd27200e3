"""Masked-LM training step: the prediction head at the chosen 15% only, versus transformers' full forward.

    python benchmarks/bench_mlm_head.py [--steps 30] [--batch 64] [--max-len 128] [--vocab 8000]

Both run the same ``BertForMaskedLM`` (chapter 4's tiny config unless overridden: 2 layers x 128,
vocabulary 8,000) on the same masked batches. The peer is the standard
``model(input_ids, attention_mask, labels=labels).loss``, which projects every position onto the
vocabulary; ours is :func:`tlcourse.mlm.gathered_mlm_loss`, which projects only the positions with a
label. Before timing, it asserts that both losses agree on the same batch (to 1e-5). Prints training
tokens per second (forward + backward + AdamW step) and the ratio ours / transformers; target >= 2.
Needs no data: the batches are random token ids, masked with :func:`tlcourse.mlm.mask_tokens`.
"""
from __future__ import annotations

import argparse
import time

import torch
from transformers import BertForMaskedLM

from tlcourse import mlm


def time_steps(model, loss_fn, batches, warmup: int = 3) -> float:
    """Seconds per training step, after ``warmup`` untimed steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    start = None
    for i, (inputs, mask, labels) in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        loss = loss_fn(model, inputs, mask, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / (len(batches) - warmup)


def standard_loss(model, inputs, mask, labels):
    return model(input_ids=inputs, attention_mask=mask, labels=labels).loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the fastest counts")
    args = parser.parse_args()

    cfg = mlm.TinyBertConfig(hidden=args.hidden, layers=args.layers, heads=max(2, args.hidden // 64),
                             intermediate=4 * args.hidden, max_len=args.max_len)
    gen = torch.Generator().manual_seed(0)
    special = torch.zeros(args.batch, args.max_len, dtype=torch.bool)
    special[:, [0, -1]] = True
    mask = torch.ones(args.batch, args.max_len, dtype=torch.long)
    batches = []
    for _ in range(args.steps + 3):
        ids = torch.randint(5, args.vocab, (args.batch, args.max_len), generator=gen)
        inputs, labels = mlm.mask_tokens(ids, special, mask_id=4, vocab_size=args.vocab, generator=gen)
        batches.append((inputs, mask, labels))

    torch.manual_seed(0)
    model = BertForMaskedLM(cfg.bert_config(args.vocab)).eval()
    with torch.no_grad():
        ours_loss = mlm.gathered_mlm_loss(model, *batches[0]).item()
        peer_loss = standard_loss(model, *batches[0]).item()
    assert abs(ours_loss - peer_loss) < 1e-5, (ours_loss, peer_loss)

    ours_t, peer_t = [], []
    for _ in range(args.repeats):  # alternate, so that both see the same machine state
        torch.manual_seed(0)
        ours_t.append(time_steps(BertForMaskedLM(cfg.bert_config(args.vocab)), mlm.gathered_mlm_loss, batches))
        torch.manual_seed(0)
        peer_t.append(time_steps(BertForMaskedLM(cfg.bert_config(args.vocab)), standard_loss, batches))
    tokens = args.batch * args.max_len
    ours, peer = tokens / min(ours_t), tokens / min(peer_t)
    print(f"BertForMaskedLM {args.layers} layers x {args.hidden}, vocabulary {args.vocab:,}, batch {args.batch} x "
          f"{args.max_len}; {torch.get_num_threads()} threads; torch {torch.__version__}")
    print(f"loss on the same batch: gathered {ours_loss:.6f}, standard {peer_loss:.6f} (|diff| "
          f"{abs(ours_loss - peer_loss):.1e})")
    print(f"{'':28s}{'gathered':>12s}{'transformers':>14s}{'ratio':>8s}")
    print(f"{'training tokens / second':28s}{ours:12,.0f}{peer:14,.0f}{ours / peer:8.2f}")


if __name__ == "__main__":
    main()
