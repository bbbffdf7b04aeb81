"""HookedPLM's surface around the forward pass: the loss, ``run_with_cache`` returning an ActivationCache,
``generate`` and checkpoints (thin wrappers over their own modules). The forward pass itself is in
``hooked_plm.py``."""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from transformer_lens import ActivationCache

from plm_interp.model.checkpoint_files import WEIGHTS, check_state_dict, read_checkpoint, save_model


class Surface:
    """Mixin for :class:`~plm_interp.model.HookedPLM`."""

    def loss(self, logits, tokens, loss_mask=None, targets=None, per_token: bool = False) -> torch.Tensor:
        """The training loss of ``logits``: next-token cross-entropy on ``tokens`` (masked by ``loss_mask``, see
        :func:`lm_loss`) for the causal model, masked-LM cross-entropy on ``targets != -100`` for the
        bidirectional one. ``per_token`` keeps it per position (``[batch, pos - 1]`` causal, ``[batch, pos]``
        masked-LM, 0 where not predicted)."""
        if self.cfg.attention_dir == "bidirectional":
            if targets is None:
                raise ValueError("the bidirectional (masked-LM) model needs `targets` (-100 = not predicted)")
            flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                                   ignore_index=-100, reduction="none" if per_token else "mean")
            return flat.view(targets.shape) if per_token else flat
        if tokens.shape[-1] < 2:  # nothing to predict: the mean over zero positions is NaN, without a word
            raise ValueError(f"return_type='loss' needs at least 2 tokens per row (each position predicts the next); "
                             f"got tokens of shape {tuple(tokens.shape)} (a model with n_ctx = 1 cannot have a "
                             "next-token loss)")
        return lm_loss(logits, tokens, loss_mask, per_token=per_token)

    def loss_fn(
        self,
        logits: Float[torch.Tensor, "batch pos d_vocab"],
        tokens: Int[torch.Tensor, "batch pos"],
        attention_mask: torch.Tensor | None = None,
        per_token: bool = False,
    ) -> torch.Tensor:
        """HookedTransformer's ``loss_fn``: next-token cross-entropy of ``logits`` on ``tokens`` (log-softmax and
        gather, TL's formula); ``attention_mask[b, p]`` (0 = padding) drops predictions from or of a masked token;
        ``per_token`` gives the ``[batch, pos - 1]`` losses."""
        log_probs = logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
        if attention_mask is None:
            return -log_probs if per_token else -log_probs.mean()
        mask = (attention_mask[:, :-1].bool() & attention_mask[:, 1:].bool()).to(log_probs.dtype)
        if per_token:
            return -log_probs * mask
        return -(log_probs * mask).sum() / mask.sum()

    def run_with_cache(self, *model_args, return_cache_object: bool = True, remove_batch_dim: bool = False,
                       **kwargs):
        """As HookedTransformer: ``(output, ActivationCache)``; ``return_cache_object=False`` gives a dict."""
        out, cache_dict = super().run_with_cache(*model_args, remove_batch_dim=remove_batch_dim, **kwargs)
        if not return_cache_object:
            return out, cache_dict
        return out, ActivationCache(cache_dict, self, has_batch_dim=not remove_batch_dim)

    # -- decoding and checkpoints (thin wrappers over their own modules) ------------------------------------
    def generate(self, input, **kwargs):
        """Sample continuations with HookedTransformer's arguments and defaults (10 new tokens; ``stop_at_eos`` stops
        at the tokenizer's EOS; ``output_logits=True`` returns ``sequences`` and per-step ``logits``); see
        :func:`plm_interp.generation.generate`. An argument it does not have is refused by name, not with a bare
        TypeError."""
        import inspect

        from plm_interp.generation import generate

        known = set(inspect.signature(generate).parameters) - {"model", "input"}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(f"generate() does not support {unknown} for HookedPLM; its arguments: {sorted(known)}")
        return generate(self, input, **kwargs)

    def save_pretrained(self, directory) -> None:
        """Write ``model.safetensors`` and ``config.json`` into ``directory``
        (:func:`plm_interp.model.checkpoint_files.save_model`)."""
        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory, device: str | None = None) -> "HookedPLM":
        """Load a checkpoint written by :meth:`save_pretrained`, verified before anything is built
        (:func:`plm_interp.model.checkpoint_files.read_checkpoint`): the config, the weights' checksum, every key
        and shape. ``device`` overrides the saved one; the default is the CPU."""
        cfg, state = read_checkpoint(directory, device)
        model = cls(cfg.replace(device="cpu"))
        check_state_dict(model, state, Path(directory) / WEIGHTS)
        model.load_state_dict(state)
        return model.to(cfg.device) if cfg.device != "cpu" else model


def lm_loss(
    logits: Float[torch.Tensor, "batch pos d_vocab"],
    tokens: Int[torch.Tensor, "batch pos"],
    loss_mask: torch.Tensor | None = None,
    per_token: bool = False,
) -> torch.Tensor:
    """Mean next-token cross-entropy; ``loss_mask[b, p]`` selects which *predicted* tokens ``p ≥ 1`` count.
    ``per_token`` gives the ``[batch, pos - 1]`` losses instead (masked-out ones set to 0)."""
    pred = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    target = tokens[:, 1:].reshape(-1)
    if per_token:
        losses = F.cross_entropy(pred, target, reduction="none").view(tokens.shape[0], -1)
        return losses if loss_mask is None else losses * loss_mask[:, 1:].to(losses.dtype)
    if loss_mask is None:
        return F.cross_entropy(pred, target)
    if loss_mask.device.type == "cpu" and not bool(loss_mask[:, 1:].any()):  # free to check on CPU
        raise ValueError(f"loss_mask selects no predicted token (loss_mask[:, 1:] of shape "
                         f"{tuple(loss_mask[:, 1:].shape)} is all False): the mean loss over no tokens is undefined; "
                         "pass a mask with at least one True after position 0, or no mask")
    per_token = F.cross_entropy(pred, target, reduction="none")
    mask = loss_mask[:, 1:].reshape(-1).to(per_token.dtype)
    # an empty mask on an accelerator gives NaN (0 / 0), which the trainer stops on by name, not 0.0 that trains
    # on nothing: checking it there would cost a device sync every step
    return (per_token * mask).sum() / mask.sum()
