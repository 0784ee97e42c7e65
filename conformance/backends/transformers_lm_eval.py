"""lm-eval's HFLM around the transformers backend's model: the task probe's adapter for this backend.

The model already loaded for the run is wrapped (no second load), in a subclass whose rolling loglikelihood
conditions on exactly one prefix token: a tokenizer that prepends BOS itself would otherwise make lm-eval
score that BOS as a predicted token (lm-evaluation-harness#3333).
"""

from __future__ import annotations

import functools
from typing import Any

from ..errors import CheckError


@functools.cache
def single_prefix_hflm() -> type:
    """lm-eval's HFLM with one change: rolling loglikelihood never scores a BOS the tokenizer added.

    ``HFLM.loglikelihood_rolling`` windows ``tok_encode(document)`` behind ``prefix_token_id``. A tokenizer
    whose post-processor prepends BOS makes that ``[BOS, BOS, text...]``, and the second BOS is scored as
    if it were text (lm-evaluation-harness#3333). While a rolling request is being encoded, this subclass
    drops a leading token equal to the prefix token when the tokenizer added it (it is absent when the
    same text is encoded without special tokens), so every window sequence starts with exactly one
    prefix token and only the document's own tokens are scored, in single and multi-window documents
    alike. Everything else (batching, padding, windowing, loglikelihood and generation requests) is
    lm-eval's own code, so a tokenizer that adds no BOS gives bit-identical scores to plain HFLM.

    Returns the class (built on first call: importing lm-eval takes seconds).
    """
    from lm_eval.models.huggingface import HFLM

    class SinglePrefixHFLM(HFLM):
        """HFLM whose rolling loglikelihood has one prefix token as context, never a second one scored."""

        _encoding_rolling = False
        rolling_bos_dropped = 0  # rolling documents whose tokenizer-added leading BOS was dropped

        def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
            """lm-eval's rolling loglikelihood (summed log-probabilities in nats, one per request)."""
            self._encoding_rolling = True
            try:
                return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
            finally:
                self._encoding_rolling = False

        def tok_encode(
            self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None, **kwargs: Any
        ) -> list[int]:
            """lm-eval's encoding; in a rolling request, without a leading prefix token the tokenizer added."""
            tokens = super().tok_encode(
                string, add_special_tokens=add_special_tokens, left_truncate_len=left_truncate_len, **kwargs
            )
            rolling = self._encoding_rolling and add_special_tokens is None and not left_truncate_len
            if rolling and self._added_prefix(string, tokens):
                self.rolling_bos_dropped += 1
                return tokens[1:]
            return tokens

        def _added_prefix(self, string: str, tokens: list[int]) -> bool:
            """True when ``tokens`` starts with the prefix token and the text itself does not produce it."""
            if not tokens or tokens[0] != self.prefix_token_id:
                return False
            own = self.tokenizer.encode(string, add_special_tokens=False)
            return not own or own[0] != self.prefix_token_id

        def tokenizer_adds_prefix(self) -> bool:
            """Whether ``tok_encode`` of plain text starts with the prefix token (the tokenizer adds BOS)."""
            sample = "Hello world"
            return self._added_prefix(sample, HFLM.tok_encode(self, sample))

    return SinglePrefixHFLM


def wrap_model(model: Any, tokenizer: Any, prefix_token_id: int, batch_size: int, backend: str = "causal") -> Any:
    """lm-eval's HFLM (as `single_prefix_hflm`) around the model object already loaded: no second load.

    ``batch_size`` is lm-eval's batch size (requests per forward pass; scores can move with it in bf16 on
    GPU, so it is recorded). ``prefix_token_id`` is the backend's one choice (`special_tokens`); a tokenizer
    without a pad token gets that token as its pad, which lm-eval needs for batching (padded positions are
    masked or after the scored ones, so its value moves no score). ``backend`` is HFLM's: "causal" (the
    logits of the prompt and continuation in one sequence) or "seq2seq" (the context to the encoder, the
    continuation scored by the decoder), given explicitly because HFLM guesses it from the model_type
    and falls back to causal with a warning for a multimodal family. Raises CheckError when the model
    ships no tokenizer.
    """
    if tokenizer is None:
        raise CheckError("task scoring needs the model's tokenizer, and none is shipped")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(prefix_token_id)
    return single_prefix_hflm()(
        pretrained=model,
        tokenizer=tokenizer,
        batch_size=batch_size,
        prefix_token_id=prefix_token_id,
        backend=backend,
    )


def scoring_settings(model: Any, dtype: str) -> dict[str, Any]:
    """Every setting besides the task that can change a score, as plain JSON values.

    ``model`` is the wrapper `wrap_model` returned (after evaluation, so the BOS count is final). Keys:
    backend (HFLM's "causal" or "seq2seq": how a request's context and continuation reach the model), batch_size (lm-eval's, requests per forward pass), dtype (the weights', as loaded), device, prefix_token_id and
    prefix_token (the one context token of rolling and empty-context requests), max_length (tokens per
    window), add_bos_token (HFLM's option; None leaves it to the tokenizer), tokenizer_adds_bos,
    rolling_bos_correction (a tokenizer-added BOS was dropped from at least one rolling document),
    rolling_bos_dropped (how many), and the torch and transformers versions.
    """
    import torch
    import transformers

    prefix = int(model.prefix_token_id)
    try:
        token = model.tokenizer.convert_ids_to_tokens(prefix)
    except Exception:  # a tokenizer without the id, or without the method: the id alone is recorded
        token = None
    batch_size = model.batch_size
    dropped = int(getattr(model, "rolling_bos_dropped", 0))
    adds_bos = getattr(model, "tokenizer_adds_prefix", None)
    backend = getattr(model, "backend", None)
    return {
        "backend": backend if isinstance(backend, str) else None,
        "batch_size": int(batch_size) if str(batch_size).isdigit() else str(batch_size),
        "dtype": dtype,
        "device": str(model.device),
        "prefix_token_id": prefix,
        "prefix_token": token if isinstance(token, str) else None,
        "max_length": int(model.max_length),
        "add_bos_token": model.add_bos_token if isinstance(model.add_bos_token, bool) else None,
        "tokenizer_adds_bos": bool(adds_bos()) if adds_bos is not None else None,
        "rolling_bos_correction": dropped > 0,
        "rolling_bos_dropped": dropped,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
    }
