"""tlcourse.lora and tlcourse.adapters (chapter 6): LoRA against its definition and against peft;
adapters, BitFit and prompt tuning at initialisation; the accounting."""
import pytest
import torch

from tlcourse import adapters, lora
from tlcourse.train import parameter_counts


def _minilm(num_labels=2, seed=0):
    from transformers import AutoModelForSequenceClassification

    from tlcourse import hub

    torch.manual_seed(seed)
    return hub.load_model("minilm", AutoModelForSequenceClassification, num_labels=num_labels).eval()


@pytest.fixture(scope="module")
def batch():
    from tlcourse import hub

    tok = hub.load_tokenizer("minilm")
    return dict(tok(["a gripping , funny film", "dull"], padding=True, return_tensors="pt"))


def test_lora_linear_starts_at_the_base_and_trains_only_its_factors():
    torch.manual_seed(0)
    base = torch.nn.Linear(12, 7)
    layer = lora.LoRALinear(base, r=3, alpha=6)
    x = torch.randn(5, 12)
    assert torch.equal(layer(x), base(x))                     # B = 0: the pretrained function
    assert layer.lora_A.shape == (3, 12) and layer.lora_B.shape == (7, 3) and layer.scaling == 2.0
    torch.nn.init.normal_(layer.lora_B)
    layer(x).pow(2).sum().backward()
    assert base.weight.grad is None and base.bias.grad is None
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None
    want = x @ (base.weight + 2.0 * layer.lora_B @ layer.lora_A).T + base.bias
    assert torch.allclose(layer(x), want, atol=1e-6)


@pytest.mark.parametrize("r", [1, 4, 16])
def test_lora_initialisation_has_peft_distribution(r):
    """A is drawn as peft (and loralib) draw it, whatever r: Kaiming-uniform with a = sqrt(5), i.e.
    uniform on [-1/sqrt(d_in), 1/sqrt(d_in)]; B is zero. Compared over many draws, not copied."""
    from peft import LoraConfig
    from peft.tuners.lora import Linear as PeftLinear

    torch.manual_seed(r)
    d_in, d_out, draws = 384, 64, 40
    config = LoraConfig(r=r, lora_alpha=16, lora_dropout=0.0)
    ours, theirs = [], []
    for _ in range(draws):
        layer = lora.LoRALinear(torch.nn.Linear(d_in, d_out), r=r, alpha=16)
        peft_layer = PeftLinear(torch.nn.Linear(d_in, d_out), "default", config, r=r, lora_alpha=16)
        assert torch.count_nonzero(layer.lora_B) == 0
        assert torch.count_nonzero(peft_layer.lora_B["default"].weight) == 0
        assert layer.scaling == peft_layer.scaling["default"]
        ours.append(layer.lora_A.detach().flatten())
        theirs.append(peft_layer.lora_A["default"].weight.detach().flatten())
    ours, theirs = torch.cat(ours), torch.cat(theirs)
    bound = d_in**-0.5
    for a in (ours, theirs):
        assert a.abs().max() <= bound and a.abs().max() > 0.99 * bound
    n = len(ours)  # >= 15,000 draws: the std to about 1%, the quantiles to about 0.01 bound
    assert abs(ours.std() / theirs.std() - 1) < 0.03, (ours.std(), theirs.std())
    assert abs(ours.std() - bound / 3**0.5) < 0.03 * bound
    q = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95])
    assert torch.allclose(torch.quantile(ours, q), torch.quantile(theirs, q), atol=0.04 * bound), n


def test_merge_and_unmerge_round_trip():
    torch.manual_seed(1)
    base = torch.nn.Linear(16, 16)
    original = base.weight.detach().clone()
    layer = lora.LoRALinear(base, r=4, alpha=8)
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 16)
    unmerged = layer(x)
    layer.merge()
    assert layer.merged and torch.allclose(layer(x), unmerged, atol=1e-5)
    layer.merge()                                            # idempotent
    layer.unmerge()
    assert torch.allclose(base.weight, original, atol=1e-6) and torch.allclose(layer(x), unmerged, atol=1e-5)
    with pytest.raises(ValueError, match="rank"):
        lora.LoRALinear(torch.nn.Linear(2, 2), r=0)


def test_injected_lora_matches_peft(batch):
    from peft import LoraConfig, get_peft_model

    ours = _minilm()
    theirs = get_peft_model(_minilm(), LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"],
                                                  lora_dropout=0.0, task_type="SEQ_CLS"))
    names = lora.inject_lora(ours, ("query", "value"), r=8, alpha=16)
    assert len(names) == 12
    t_ours, _ = parameter_counts(ours)
    t_peft = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert t_ours == t_peft == 12 * (384 + 384) * 8 + 384 * 2 + 2
    for layer in lora.lora_layers(ours).values():            # a trained-looking update, B != 0
        torch.nn.init.normal_(layer.lora_B, std=0.05)
    with torch.no_grad():
        theirs.base_model.model.classifier.modules_to_save["default"].load_state_dict(ours.classifier.state_dict())
        theirs.base_model.model.classifier.original_module.load_state_dict(ours.classifier.state_dict())
    assert lora.copy_to_peft(ours, theirs) == 24
    with torch.no_grad():
        a, b = ours(**batch).logits, theirs(**batch).logits
        assert torch.allclose(a, b, atol=1e-5), (a, b)
        lora.merge_all(ours)
        assert torch.allclose(ours(**batch).logits, a, atol=1e-5)
        lora.unmerge_all(ours)
    with pytest.raises(ValueError, match="linear layers are named"):
        lora.inject_lora(_minilm(), ("q_proj",))


def test_adapters_start_as_the_identity_and_train_alone(batch):
    model = _minilm()
    with torch.no_grad():
        before = model(**batch).logits
    assert adapters.insert_adapters(model, bottleneck=8) == 12
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, before)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(".adapter." in n or "LayerNorm" in n or "classifier" in n for n in trainable)
    assert sum(".adapter." in n for n in trainable) == 12 * 4
    model(**batch).logits.sum().backward()
    assert model.bert.encoder.layer[0].attention.self.query.weight.grad is None


def test_bitfit_trains_only_biases():
    model = _minilm()
    adapters.bitfit(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(".bias") or n.startswith("classifier") for n in trainable)
    t, total = parameter_counts(model)
    assert t == sum(p.numel() for n, p in model.named_parameters() if n.endswith(".bias")) + 384 * 2 and t < 0.01 * total


def test_prompt_tuning_matches_peft_and_respects_padding(batch):
    from peft import PromptTuningConfig, get_peft_model

    ours = adapters.PromptTuning(_minilm(), n=5)
    theirs = get_peft_model(_minilm(), PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=5))
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.prompt)
        theirs.base_model.classifier.modules_to_save["default"].load_state_dict(ours.model.classifier.state_dict())
        a, b = ours(**batch).logits, theirs(**batch).logits
        assert torch.allclose(a, b, atol=1e-5), (a, b)
        single = ours(**{k: v[1:, : int(batch["attention_mask"][1].sum())] for k, v in batch.items()}).logits
        assert torch.allclose(single, a[1:], atol=1e-5)       # padding is masked after the prompt too
    t, _ = parameter_counts(ours)
    assert t == 5 * 384 + 384 * 2 + 2
    with pytest.raises(ValueError, match="init ids"):
        adapters.PromptTuning(_minilm(), n=3, init_ids=torch.arange(4))


def test_prompt_tuning_on_mean_pooled_minilm(batch):
    from tlcourse.finetune import minilm_classifier

    torch.manual_seed(0)
    ours = adapters.PromptTuning(minilm_classifier(2), n=6, seed=3).eval()
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable == {"prompt", "classifier.weight", "classifier.bias"}   # the head keeps its name
    words = ours.embeddings.weight[torch.tensor(adapters.FREQUENT_WORDS)]
    assert all((words == row).all(1).any() for row in ours.prompt.detach())  # frequent words' vectors
    with torch.no_grad():
        a = ours(**batch).logits
        single = ours(**{k: v[1:, : int(batch["attention_mask"][1].sum())] for k, v in batch.items()}).logits
        assert torch.allclose(single, a[1:], atol=1e-5)


def test_training_memory_accounting():
    mem = adapters.training_memory(trainable=10, total=100)
    assert mem == {"weights": 400, "gradients": 40, "optimizer": 80, "total": 520}


def test_task_switcher_restores_each_task_and_names_are_checked(batch):
    from tlcourse.chapters import ch06_peft

    cfg = ch06_peft.PeftChapterConfig()
    a, b = ch06_peft.build("LoRA r=4", cfg, seed=1), ch06_peft.build("LoRA r=4", cfg, num_labels=4, seed=2)
    for m in (a, b):
        for layer in lora.lora_layers(m).values():
            torch.nn.init.normal_(layer.lora_B, std=0.05)
    switcher = ch06_peft.TaskSwitcher(ch06_peft.build("LoRA r=4", cfg))
    assert switcher.add("a", a) == 12 * 768 * 4 + 384 * 2 + 2
    switcher.add("b", b)
    with torch.no_grad():
        want_a, want_b = a.eval()(**batch).logits, b.eval()(**batch).logits
        assert torch.equal(switcher.activate("b").eval()(**batch).logits, want_b)
        assert torch.equal(switcher.activate("a").eval()(**batch).logits, want_a)
    with pytest.raises(KeyError, match="added"):
        switcher.activate("c")
    with pytest.raises(ValueError, match="unknown method"):
        ch06_peft.build("IA3", cfg)
    jobs = ch06_peft.runs(cfg)
    assert ("full", cfg.lrs["full"], cfg.seeds) in jobs and cfg.seeds >= 3
    low = ch06_peft.run_config(cfg, 5e-5)                    # the head keeps its own rate
    assert low.lr == 5e-5 and abs(low.lr * low.head_lr_scale - cfg.head_lr) < 1e-12
