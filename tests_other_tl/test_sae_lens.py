"""sae-lens on HookedPLM (issue 19 item 4), TL 3.9 line only (sae-lens pins transformer-lens < 4): its own
training runner trains an SAE on a plain HookedPLM with no subclass or patching, ``run_evals`` runs and its
numbers match our own computation, and HookedSAEPLM splices the SAE in with ``use_error_term`` giving the
clean logits back."""
import pytest
import torch
from datasets import Dataset
from sae_lens import (LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig,
                      StandardTrainingSAEConfig)
from sae_lens.evals import EvalConfig, run_evals
from sae_lens.training.activation_scaler import ActivationScaler
from sae_lens.training.activations_store import ActivationsStore

from plm_interp import HookedPLM, preset_config
from plm_interp.model.sae import HookedSAEPLM
from tasks.cfg import CFGTask

HOOK = "blocks.0.hook_resid_post"
N_CTX = 64


def _config(tokens: int) -> LanguageModelSAERunnerConfig:
    return LanguageModelSAERunnerConfig(
        sae=StandardTrainingSAEConfig(d_in=32, d_sae=128, l1_coefficient=0.1), lr=1e-2, model_name="plm-interp tiny",
        hook_name=HOOK, dataset_path="in-memory", is_dataset_tokenized=True, streaming=False, context_size=N_CTX,
        prepend_bos=False, training_tokens=tokens, train_batch_size_tokens=256, store_batch_size_prompts=16,
        n_batches_in_buffer=4, n_batches_for_norm_estimate=4, logger=LoggingConfig(log_to_wandb=False),
        checkpoint_path=None, output_path=None, verbose=False, device="cpu")


@pytest.fixture(scope="module")
def trained():
    task = CFGTask("demo")
    model = HookedPLM(preset_config("tiny", d_vocab=task.d_vocab, n_ctx=N_CTX, seed=0, task=task.spec()))
    rows = next(task.batches(128, N_CTX, seed=0)).tokens
    cfg = _config(tokens=N_CTX * 256)
    sae = LanguageModelSAETrainingRunner(cfg, override_model=model, override_dataset=Dataset.from_dict(
        {"input_ids": rows.tolist()})).run()
    return model, sae, rows, cfg


def test_the_runner_trains_an_sae_on_a_plain_hooked_plm(trained):
    model, sae, rows, _ = trained
    acts = model.run_with_cache(rows[:16], names_filter=HOOK)[1][HOOK].reshape(-1, 32)
    untrained = type(sae)(sae.cfg)  # same architecture, fresh weights
    with torch.no_grad():
        fvu = ((sae(acts) - acts).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()).item()
        fvu_untrained = ((untrained(acts) - acts).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()).item()
    assert fvu < 0.5 * fvu_untrained and fvu < 0.5


def test_run_evals_losses_match_our_own_computation(trained):
    """Every eval row is the same sequence, so the CE losses sae-lens reports must be our model's loss on it:
    clean, with the hook zero-ablated, and with the SAE spliced in by HookedSAEPLM."""
    model, sae, rows, cfg = trained
    row = rows[:1]
    store = ActivationsStore.from_config(model, cfg, override_dataset=Dataset.from_dict(
        {"input_ids": row.repeat(64, 1).tolist()}))
    metrics, _ = run_evals(sae, store, model, ActivationScaler(), EvalConfig(
        n_eval_reconstruction_batches=2, n_eval_sparsity_variance_batches=1, compute_ce_loss=True,
        compute_kl=True, batch_size_prompts=8), exclude_special_tokens=False)
    perf = metrics["model_performance_preservation"]
    clean = model(row, return_type="loss").item()
    ablated = model.run_with_hooks(row, return_type="loss",
                                   fwd_hooks=[(HOOK, lambda x, hook: torch.zeros_like(x))]).item()
    assert perf["ce_loss_without_sae"] == pytest.approx(clean, rel=1e-5)
    assert perf["ce_loss_with_ablation"] == pytest.approx(ablated, rel=1e-5)
    with_sae = HookedSAEPLM.from_model(model).run_with_saes(row, saes=[sae], return_type="loss").item()
    assert perf["ce_loss_with_sae"] == pytest.approx(with_sae, rel=1e-4)
    score = (ablated - with_sae) / (ablated - clean)  # sae-lens's CE-loss score, from our three losses
    assert perf["ce_loss_score"] == pytest.approx(score, rel=1e-3)


def test_spliced_sae_with_error_term_gives_the_clean_logits(trained):
    model, sae, rows, _ = trained
    tokens = rows[:4]
    clean = model(tokens)
    spliced = HookedSAEPLM.from_model(model)
    torch.testing.assert_close(spliced(tokens), clean)
    with_sae = spliced.run_with_saes(tokens, saes=[sae])
    assert (with_sae - clean).abs().max() > 1e-3  # the reconstruction replaces the activation
    spliced.add_sae(sae, use_error_term=True)
    torch.testing.assert_close(spliced(tokens), clean, atol=1e-5, rtol=1e-5)
    _, cache = spliced.run_with_cache(tokens)
    feats = cache[f"{HOOK}.hook_sae_acts_post"]
    assert feats.shape == (4, N_CTX, 128) and (feats >= 0).all()
    spliced.reset_saes()
    assert spliced.acts_to_saes == {}
    torch.testing.assert_close(spliced(tokens), clean)
