"""tlcourse's SGNS versus gensim's Word2Vec: same corpus, same hyper-parameters, same run.

    python benchmarks/bench_word2vec.py [--epochs 5] [--workers 2]     # needs TLCOURSE_DATA

Both train skip-gram with negative sampling on chapter 2's corpus (Gutenberg + WikiText-2 valid/test,
1.7M tokens) with gensim's defaults for window, negatives, subsampling and learning rate, using the
same number of CPU threads (gensim ``workers``, ``torch.set_num_threads``). Prints analogy accuracy
(3CosAdd, gensim's convention), the word-similarity correlations, and training throughput in corpus
words per second, with the ratios tlcourse / gensim. Targets: analogy ratio >= 0.95, throughput >= 0.5.
"""
from __future__ import annotations

import argparse

import torch

from tlcourse import data
from tlcourse import embeddings as E
from tlcourse import wordvectors as WV


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="threads for both (gensim workers, torch threads)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each, alternating; the fastest counts")
    args = parser.parse_args()
    torch.set_num_threads(args.workers)
    sentences = E.corpus_sentences()
    corpus = E.Corpus.build(sentences, min_count=5)
    cfg = E.SGNSConfig(epochs=args.epochs)
    analogies = data.load_analogy()
    similarity = {n: data.load_word_similarity(n) for n in ("wordsim353", "simlex999", "men")}
    words = corpus.n_raw_tokens * cfg.epochs

    ours_times, peer_times = [], []
    for _ in range(args.repeats):  # alternate, so that both see the same machine state
        W, _, stats = E.train_sgns(corpus, cfg, progress=False)
        ours_times.append(stats.seconds)
        itos, vectors, seconds = E.gensim_word2vec(sentences, cfg, min_count=5, workers=args.workers)
        peer_times.append(seconds)
    ours = WV.evaluate(WV.WordVectors(corpus.itos, W), analogies, similarity)
    peer = WV.evaluate(WV.WordVectors(itos, vectors), analogies, similarity)

    print(f"corpus: {corpus.n_raw_tokens:,} tokens, vocabulary {len(corpus.itos):,}; {cfg.epochs} epochs; "
          f"{args.workers} threads each; torch {torch.__version__}")
    print(f"{'':24s}{'tlcourse':>12s}{'gensim':>12s}{'ratio':>9s}")
    for key in ours:
        print(f"{key:24s}{ours[key]:12.4f}{peer[key]:12.4f}{ours[key] / peer[key]:9.2f}")
    ours_s, peer_s = min(ours_times), min(peer_times)
    ours_wps, peer_wps = words / ours_s, words / peer_s
    print(f"{'train seconds (runs)':24s}{' / '.join(f'{t:.1f}' for t in ours_times):>12s}{' / '.join(f'{t:.1f}' for t in peer_times):>12s}")
    print(f"{'words / second':24s}{ours_wps:12,.0f}{peer_wps:12,.0f}{ours_wps / peer_wps:9.2f}")


if __name__ == "__main__":
    main()
