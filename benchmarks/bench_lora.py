"""LoRA training step: tlcourse's LoRALinear versus peft's LoRA, same model, same batches.

    python benchmarks/bench_lora.py [--steps 20] [--batch 32] [--max-len 64] [--rank 8] [--repeats 2]

Both inject rank-``r`` LoRA (alpha 16) into MiniLM's query and value projections (sequence
classification, 2 labels) and train with AdamW on the same random batches
(:func:`tlcourse.chapters.ch06_peft.step_profile`). Before timing, it checks that the two give the same
logits once our LoRA weights are copied into peft's (to 1e-5). Each variant runs in its own
subprocess, so that its peak resident memory (``ru_maxrss``) is its own; the variants alternate
``--repeats`` times and the fastest run of each counts. Prints seconds per step, peak RSS and the
ratios ours / peft (targets: time <= 1.05, memory about 1), and full fine-tuning measured the same
way, for what LoRA saves. Needs the MiniLM bundle, no data.
"""
from __future__ import annotations

import argparse

import torch

from tlcourse import lora
from tlcourse.chapters import ch06_peft


def agree(rank: int) -> float:
    cfg = ch06_peft.PeftChapterConfig()
    ours, theirs = ch06_peft.build(f"LoRA r={rank}", cfg).eval(), ch06_peft.build(f"peft LoRA r={rank}", cfg).eval()
    for layer in lora.lora_layers(ours).values():
        torch.nn.init.normal_(layer.lora_B, std=0.05)
    lora.copy_to_peft(ours, theirs)
    with torch.no_grad():
        theirs.base_model.model.classifier.modules_to_save["default"].load_state_dict(ours.classifier.state_dict())
        ids = torch.randint(1000, 30000, (4, 32), generator=torch.Generator().manual_seed(0))
        return (ours(input_ids=ids).logits - theirs(input_ids=ids).logits).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    diff = agree(args.rank)
    assert diff < 1e-5, f"ours and peft disagree by {diff}"
    print(f"max |logit difference| ours vs peft with the same LoRA weights: {diff:.1e}")
    variants = {"ours": f"LoRA r={args.rank}", "peft": f"peft LoRA r={args.rank}", "full": "full"}
    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, method in variants.items():
            result = ch06_peft.step_profile(method, args.steps, args.batch, args.max_len)
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    print(f"{'variant':8s} {'s/step':>8s} {'peak RSS MB':>12s}")
    for name, r in best.items():
        print(f"{name:8s} {r['seconds']:8.3f} {r['rss_mb']:12.0f}")
    print(f"ours / peft: time {best['ours']['seconds'] / best['peft']['seconds']:.3f} (target <= 1.05), "
          f"memory {best['ours']['rss_mb'] / best['peft']['rss_mb']:.3f}")
    print(f"LoRA (ours) / full fine-tuning: time {best['ours']['seconds'] / best['full']['seconds']:.3f}, "
          f"memory {best['ours']['rss_mb'] / best['full']['rss_mb']:.3f}")


if __name__ == "__main__":
    main()
