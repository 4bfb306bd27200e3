"""tlcourse.finetune: the mean-pooling head, pair truncation and the fresh head's learning rate."""
import datasets
import torch
from toy_bert import SMALL, TEXTS, tokenizer  # noqa: F401 (tokenizer: a fixture)

from tlcourse import finetune


def test_mean_pool_head_reads_the_mean_of_real_tokens(tokenizer):
    from transformers import BertModel

    torch.manual_seed(0)
    model = finetune.MeanPoolClassifier(BertModel(SMALL.bert_config(len(tokenizer))), num_labels=3).eval()
    short = tokenizer(["alice was tired"], return_tensors="pt")
    padded = tokenizer(["alice was tired"], padding="max_length", max_length=12, return_tensors="pt")
    with torch.no_grad():
        logits = model(**short).logits
        hidden = model.encoder(**short).last_hidden_state
        assert torch.allclose(logits, model.classifier(hidden.mean(1)), atol=1e-5)
        assert torch.allclose(model(**padded).logits, logits, atol=1e-5)  # padding is not averaged in


def test_pairs_truncate_the_first_text_only(tokenizer):
    pairs = datasets.Dataset.from_dict({"sentence1": [" ".join(TEXTS[:6])], "sentence2": ["alice was very tired"],
                                        "label": [0]})
    enc = finetune.encode(tokenizer, pairs, ("sentence1", "sentence2"), 16, truncation="only_first")
    second = len(tokenizer("alice was very tired", add_special_tokens=False)["input_ids"])
    assert enc["attention_mask"].sum() == 16 and enc["token_type_ids"].sum() == second + 1  # + its [SEP]


def test_a_fresh_head_trains_at_its_own_learning_rate(tokenizer):
    from transformers import BertForSequenceClassification

    train = finetune.encode(tokenizer, datasets.Dataset.from_dict({"sentence": TEXTS[:32], "label": [0, 1] * 16}),
                            ["sentence"], 12)
    torch.manual_seed(0)
    model = BertForSequenceClassification(SMALL.bert_config(len(tokenizer)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = finetune.FinetuneConfig(min_steps=3, max_steps=3, batch=8, lr=1e-9, head_lr_scale=1e7, max_len=12)
    finetune.finetune_classifier(model, train, train, cfg)
    moved = {k: float((v - before[k]).abs().max()) for k, v in model.state_dict().items()}
    assert moved["classifier.weight"] > 1e-3
    assert max(v for k, v in moved.items() if not k.startswith("classifier.")) < 1e-6
