"""The transformers backend: Auto classes, `generate`, and lm-eval's HFLM around the loaded model.

Every call into transformers and torch that the runtime probes make is here (the HFLM subclass is in
`transformers_lm_eval.py`). torch and transformers are imported inside the methods: importing
`conformance.backends` stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

from ..errors import CheckError, CheckSkipped
from ..probes.architecture import normalize_architecture
from ..probes.kinds import CAUSAL, ENCODER, IMAGE_TEXT_TO_TEXT, SEQ2SEQ
from ..probes.roofline import decode_weight_bytes, model_matmul_parameters
from .base import Activations, Backend, LoadReport, LoadRequest, ModelFacts, TokenIds
from .special_tokens import prefix_token_id
from .transformers_lm_eval import scoring_settings, wrap_model
from .transformers_loading import is_unsupported_gguf, load_report, not_runnable_reason, quiet_load_report


class TransformersBackend(Backend):
    """A transformers model (torch) and its tokenizer (None when the model ships none), already loaded.

    Built by `load`, or directly from objects in memory (tests, benchmarks); either way `facts` is
    computed here, once: the parameters are walked at construction, never on access.
    """

    name: ClassVar[str] = "transformers"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        kind: str,
        device: str,
        dtype: str,
        load_seconds: float,
        architecture: dict[str, Any] | None = None,
        loading: LoadReport | None = None,
    ) -> None:
        """Wrap a loaded model; walks its parameters once for `facts` and reads its prefix token id.

        Args:
            model: the torch model (a transformers PreTrainedModel), already on `device`.
            tokenizer: its tokenizer, or None when the model ships none.
            kind: one of `probes.kinds` ("causal", "encoder", "seq2seq", "image-text-to-text"), as
                `ModelFacts.kind`: it decides what `forward` returns and how `generate` reads the output.
            device: torch's device string ("cpu", "cuda:0").
            dtype: the parameters' dtype name ("float32", "bfloat16").
            load_seconds: wall time the load took, in seconds (0.0 for a model built in memory).
            architecture: the common architecture vocabulary (layers, hidden size, heads, ...); copied.
            loading: how the weights covered the model (`LoadReport`), None for a model built in memory.
        """
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
        self.device = device
        self.dtype = dtype
        self.load_seconds = load_seconds
        self.architecture = dict(architecture or {})
        # The encoder-decoder mechanics (decoder start token, decoder-only output) follow the model's own
        # config: an image-text-to-text model may be encoder-decoder too (UDOP, VisionEncoderDecoder).
        # An encoder has no decoder, whatever its config says (a T5EncoderModel's may say is_encoder_decoder).
        loaded_encoder_decoder = getattr(getattr(model, "config", None), "is_encoder_decoder", False) is True
        self._encoder_decoder = kind == SEQ2SEQ or (kind != ENCODER and loaded_encoder_decoder)
        self.facts = self._model_facts(loading)
        # Read once: the id cannot change under the probes (setting a missing tokenizer pad to it, as the
        # lm-eval adapter does, leaves the choice as it was).
        self._prefix_token_id = prefix_token_id(tokenizer, getattr(model, "config", None), getattr(model, "generation_config", None))
        self._mask_of: tuple[Any, Any] | None = None  # (ids, their attention mask): built once per input

    def _model_facts(self, loading: LoadReport | None) -> ModelFacts:
        architecture = dict(self.architecture)
        # head_dim comes from the normalization, which reads it as transformers' config class does (the text
        # decoder's for a multimodal model; none for a field set per layer): one source for static and load facts.
        # An architecture given without the key (a backend built in memory) takes the model config's.
        if "head_dim" not in architecture:
            architecture["head_dim"] = getattr(getattr(self.model, "config", None), "head_dim", None)
        if self._encoder_decoder:  # the roofline rules read it: their formula is a decoder-only one
            architecture["is_encoder_decoder"] = True
        matmul = model_matmul_parameters(self.model)
        return ModelFacts(
            kind=self.kind,
            model_class=type(self.model).__name__,
            device=self.device,
            dtype=self.dtype,
            load_seconds=self.load_seconds,
            parameters=int(sum(p.numel() for p in self.model.parameters())),
            architecture=architecture,
            matmul_body=matmul.body,
            matmul_head=matmul.head,
            element_bytes=int(next(self.model.parameters()).element_size()),
            loading=loading,
            decode_weight_bytes=decode_weight_bytes(self.model),
        )

    # --- load ---------------------------------------------------------------------------------

    @classmethod
    def resolve_device(cls, requested: str) -> str:
        """torch's device for `requested`: auto is cuda:0 when CUDA is present, else cpu."""
        import torch

        if requested == "auto":
            return "cuda:0" if torch.cuda.is_available() else "cpu"
        if requested.startswith("cuda"):
            if not torch.cuda.is_available():
                raise CheckError(f"device {requested} requested but no CUDA device is available")
            return "cuda:0" if requested == "cuda" else requested
        if requested != "cpu":
            raise CheckError(f"unknown device {requested!r} (auto, cpu, cuda, cuda:N)")
        return "cpu"

    @classmethod
    def load(cls, request: LoadRequest) -> TransformersBackend:
        """Auto classes with trust_remote_code=False and local files only, from the staging folder.

        The Auto class follows `request.kind` (`auto_class_of`): AutoModelForCausalLM, AutoModel for an
        encoder, AutoModelForSeq2SeqLM, AutoModelForImageTextToText.

        Pickle weights go through transformers' torch.load(weights_only=True) (4.50+ / torch 2.6). A GGUF
        file (`request.weights_file`) is loaded with `gguf_file=`: config, tokenizer and weights from that
        one file, the weights dequantized. Safetensors weights are first laid out on the meta device
        (nothing allocated) to read transformers' own missing keys: weights that do not cover the model
        are reported without building it, so a config declaring billions of parameters over a small file
        costs no memory. A model whose weights do not cover it comes back released, with `not_runnable`
        saying why and `facts.loading` the keys. Raises CheckError "load failed: <type>: <first line>" for
        whatever transformers raises, CheckSkipped when transformers cannot load a GGUF file's
        architecture or quantization types.
        """
        from transformers import AutoConfig, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # our own progress lines say what is happening
        common: dict[str, Any] = {"trust_remote_code": False, "local_files_only": True}
        gguf = request.weights_format == "gguf"
        if gguf:
            if not request.weights_file:
                raise CheckError("load failed: a GGUF load needs the file's name")
            common["gguf_file"] = request.weights_file
        try:
            with quiet_load_report():
                hf_config = AutoConfig.from_pretrained(request.folder, **common)
                auto_class = auto_class_of(request.kind, getattr(hf_config, "model_type", None))
                weights: dict[str, Any] = {
                    "config": hf_config,
                    "dtype": _torch_dtype(request.dtype, request.device),
                    "output_loading_info": True,
                    **common,
                }
                if not gguf:
                    weights["use_safetensors"] = request.weights_format == "safetensors"
                if request.weights_format == "safetensors":
                    # Lazily read headers onto the meta device: transformers' own keys, no memory.
                    laid_out: Any = auto_class.from_pretrained(request.folder, device_map="meta", **weights)
                    layout, layout_info = laid_out  # (model, loading info) with output_loading_info
                    report = load_report(layout, layout_info, request, built=False)
                    if not report.covered:
                        return cls._not_built(layout, report, request, hf_config)
                    del layout
                loaded: Any = auto_class.from_pretrained(request.folder, device_map="auto" if request.device_map_auto else None, **weights)
                model, info = loaded  # (model, loading info) with output_loading_info
                if not request.device_map_auto:
                    model = model.to(request.device)
                model.eval()
                report = load_report(model, info, request, built=True)
                tokenizer = AutoTokenizer.from_pretrained(request.folder, **common) if request.has_tokenizer or gguf else None
            _name_after_the_model_folder(model, tokenizer, request.model_path)
        except Exception as exc:  # transformers raises many types for bad configs and weights
            message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if gguf and is_unsupported_gguf(exc):
                raise CheckSkipped(f"transformers cannot load this GGUF file ({message})") from None
            raise CheckError(f"load failed: {message}") from None
        first = next(model.parameters())
        backend = cls(
            model=model,
            tokenizer=tokenizer,
            kind=request.kind,
            device=str(first.device) if request.device_map_auto else request.device,
            dtype=str(first.dtype).removeprefix("torch."),
            load_seconds=time.perf_counter() - request.started,
            architecture=_architecture(request.config, hf_config),
            loading=report,
        )
        if not report.covered:  # a pickle checkpoint (no meta pass) whose weights do not cover the model
            backend.not_runnable = not_runnable_reason(report, backend.facts.parameters)
            backend.release()
        return backend

    @classmethod
    def _not_built(cls, layout: Any, report: LoadReport, request: LoadRequest, hf_config: Any) -> TransformersBackend:
        """The facts of a model laid out on the meta device only, released at once, `not_runnable` set."""
        first = next(layout.parameters(), None)
        backend = cls(
            model=layout,
            tokenizer=None,
            kind=request.kind,
            device="meta",
            dtype=str(first.dtype).removeprefix("torch.") if first is not None else request.dtype,
            load_seconds=time.perf_counter() - request.started,
            architecture=_architecture(request.config, hf_config),
            loading=report,
        )
        backend.not_runnable = not_runnable_reason(report, backend.facts.parameters)
        backend.model = None  # nothing was allocated; no cache to empty
        return backend

    # --- tokens -------------------------------------------------------------------------------

    @property
    def has_tokenizer(self) -> bool:
        """Whether a tokenizer was loaded with the model."""
        return self.tokenizer is not None

    def encode(self, text: str) -> Any:
        """`text` as a (1, length) tensor on the device, special tokens added as the tokenizer does."""
        if self.tokenizer is None:
            raise CheckError("the model ships no tokenizer")
        return self.tokenizer(text, return_tensors="pt")["input_ids"].to(self.device)

    def decode(self, ids: Sequence[int]) -> str:
        """The tokenizer's decoding of `ids` with special tokens skipped."""
        if self.tokenizer is None:
            raise CheckError("the model ships no tokenizer")
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def encode_chat(self, text: str) -> Any:
        """A rendered chat as a (1, length) tensor, no special tokens added (as `apply_chat_template(tokenize=True)`)."""
        if self.tokenizer is None:
            raise CheckError("the model ships no tokenizer")
        return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)

    def decode_with_special_tokens(self, ids: Sequence[int]) -> str:
        """The tokenizer's decoding of `ids`, special tokens kept."""
        if self.tokenizer is None:
            raise CheckError("the model ships no tokenizer")
        return str(self.tokenizer.decode(ids, skip_special_tokens=False))

    def stop_token_ids(self) -> list[int]:
        """The model's generation config `eos_token_id` as a list (empty when it names none)."""
        config = getattr(self.model, "generation_config", None)
        value = getattr(config, "eos_token_id", None)
        items = value if isinstance(value, (list, tuple)) else [value]
        return [int(item) for item in items if isinstance(item, int)]

    def random_tokens(self, rows: int, length: int, seed: int, vocab_size: int | None = None) -> Any:
        """torch.randint from a CPU generator seeded with `seed`, then moved to the device."""
        import torch

        high = vocab_size if vocab_size is not None else self._vocab_rows()
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, high, (rows, length), generator=generator).to(self.device)

    def _vocab_rows(self) -> int:
        try:
            return int(self.model.get_input_embeddings().num_embeddings)
        except (AttributeError, TypeError, NotImplementedError):
            return int(self.model.config.vocab_size)

    def prefix_token_id(self) -> int:
        """`special_tokens.prefix_token_id` of the tokenizer, the config and the generation config."""
        return self._prefix_token_id

    # --- running ------------------------------------------------------------------------------

    def forward(self, ids: Any) -> Activations:
        """The model's logits, or an encoder's last hidden state, as float32 numpy, inference mode.

        Causal and image-text-to-text models: logits over every prompt position (rows, length, vocab),
        text only (no pixel_values). Encoder-decoder: the encoder reads `ids` and the decoder one
        position, `decoder_start_token_id`, so the logits are the decoder's first (rows, 1, vocab).
        """
        import torch

        inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if self._encoder_decoder:
            inputs["decoder_input_ids"] = torch.full((ids.shape[0], 1), self._decoder_start_id(), dtype=ids.dtype, device=ids.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        name = "last_hidden_state" if self.kind == ENCODER else "logits"
        return Activations(name=name, values=getattr(outputs, name).float().cpu().numpy())

    def _decoder_start_id(self) -> int:
        """The decoder's first input id (generation config, else model config; T5 sets it to pad); CheckError if none."""
        for source in (getattr(self.model, "generation_config", None), getattr(self.model, "config", None)):
            value = getattr(source, "decoder_start_token_id", None)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        raise CheckError("the encoder-decoder model names no decoder_start_token_id, so its decoder cannot start")

    def _generate(self, ids: Any, **settings: Any) -> Any:
        """`model.generate`, greedy, attention mask all ones, the one pad id (generate runs under no_grad).

        Not inference_mode: that makes small CPU models ~20% faster than the plain `model.generate` call
        users make, and the speed probe times that call. A `max_time` in the model's generation config is
        not applied (a wall-clock cut would make lengths depend on the machine's speed); the tokenizer is
        passed so `stop_strings` in it work as they do for a user who passes it.
        """
        if self.tokenizer is not None:
            settings.setdefault("tokenizer", self.tokenizer)
        return self.model.generate(
            input_ids=ids,
            attention_mask=self._attention_mask(ids),
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=self.prefix_token_id(),
            max_time=None,
            **settings,
        )

    def _attention_mask(self, ids: Any) -> Any:
        """All ones, built once per input tensor: the speed probe's timed calls reuse one input."""
        import torch

        if self._mask_of is None or self._mask_of[0] is not ids:
            self._mask_of = (ids, torch.ones_like(ids))
        return self._mask_of[1]

    def prefill(self, ids: TokenIds) -> Any:
        """`generate` of one token: the prompt's forward pass and the first new token (TTFT).

        Encoder-decoder: the encoder's pass over the prompt plus the decoder's first step.
        """
        return self._generate(ids, max_new_tokens=1, min_new_tokens=1)

    def generate(
        self, ids: TokenIds, max_new_tokens: int, *, min_new_tokens: int = 0, stop_ids: Sequence[int] | None = None
    ) -> Any:
        """`model.generate`, greedy; the new tokens as a view of the output tensor (no copy).

        A decoder-only output repeats the prompt, which is cut off; an encoder-decoder output is the
        decoder's sequence, whose first id is `decoder_start_token_id` (not generated), which is cut off.
        """
        settings: dict[str, Any] = {"max_new_tokens": max_new_tokens}
        if min_new_tokens:
            settings["min_new_tokens"] = min_new_tokens
        if stop_ids is not None:
            if not stop_ids:
                raise ValueError("stop_ids must name at least one id (None: the model's own)")
            settings["eos_token_id"] = list(stop_ids)
        output = self._generate(ids, **settings)
        return output[:, 1:] if self._encoder_decoder else output[:, ids.shape[1]:]

    def lm_eval_model(self, batch_size: int) -> Any:
        """lm-eval's HFLM around this model (see `transformers_lm_eval.wrap_model`).

        HFLM's "seq2seq" backend for an encoder-decoder model, "causal" otherwise (an image-text-to-text
        model is scored on text only through its language model's logits). CheckSkipped for an encoder.
        """
        if self.kind == ENCODER:
            raise CheckSkipped("encoder-only model: task scoring needs a language-model head")
        return wrap_model(self.model, self.tokenizer, self.prefix_token_id(), batch_size, backend="seq2seq" if self.kind == SEQ2SEQ else "causal")

    def lm_eval_settings(self, lm: Any) -> dict[str, Any]:
        """See `transformers_lm_eval.scoring_settings`."""
        return scoring_settings(lm, self.dtype)

    # --- memory -------------------------------------------------------------------------------

    def weights_bytes(self) -> int:
        """Bytes of the module's parameters and buffers (0 for an object without them)."""
        try:
            tensors = [*self.model.parameters(), *self.model.buffers()]
        except (AttributeError, TypeError):
            return 0
        return int(sum(tensor.numel() * tensor.element_size() for tensor in tensors))

    def context_length(self) -> int | None:
        """The normalized context length, else the config's max_position_embeddings (None if neither)."""
        config = getattr(self.model, "config", None)
        value = self.architecture.get("context_length") or getattr(config, "max_position_embeddings", None)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """torch's CUDA out-of-memory error, or an allocation failure's message."""
        import torch

        return isinstance(exc, torch.cuda.OutOfMemoryError) or super().is_out_of_memory(exc)

    def free_cached_memory(self) -> None:
        """Collect garbage, then empty torch's CUDA cache when CUDA is present."""
        import torch

        super().free_cached_memory()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def release(self) -> None:
        """Drop the model and tokenizer, then free cached memory; `facts` stay readable."""
        self.model = None
        self.tokenizer = None
        self._mask_of = None
        self.free_cached_memory()


def _torch_dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        return "auto" if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def auto_class_of(kind: str, model_type: str | None = None) -> Any:
    """The transformers Auto class that loads a model of `kind` (`probes.kinds`); ValueError for an unknown kind.

    An encoder of an encoder-decoder family (T5EncoderModel, MT5EncoderModel, UMT5EncoderModel,
    T5GemmaEncoderModel: `model_type` in transformers' text-encoding mapping under an `...EncoderModel`
    class) loads with AutoModelForTextEncoding: AutoModel would build the whole encoder-decoder and find
    the decoder's weights missing.
    """
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES

    if kind == ENCODER and str(MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES.get(model_type or "", "")).endswith("EncoderModel"):
        return transformers.AutoModelForTextEncoding
    names = {
        CAUSAL: "AutoModelForCausalLM",
        ENCODER: "AutoModel",  # the bare encoder: the runtime probes read its last hidden state
        SEQ2SEQ: "AutoModelForSeq2SeqLM",
        IMAGE_TEXT_TO_TEXT: "AutoModelForImageTextToText",
    }
    if kind not in names:
        raise ValueError(f"unknown model kind {kind!r} ({', '.join(names)})")
    return getattr(transformers, names[kind])


def _architecture(config: dict[str, Any], hf_config: Any) -> dict[str, Any]:
    """The normalized architecture of the request's config, else (a GGUF file's) of the config transformers read."""
    if config:
        return normalize_architecture(config)
    try:
        return normalize_architecture(hf_config.to_dict())
    except (AttributeError, TypeError, ValueError):
        return {}


def _name_after_the_model_folder(model: Any, tokenizer: Any, path: str) -> None:
    """Loaded objects name the model folder, not the staging folder that is gone once loaded."""
    if getattr(model, "config", None) is not None:
        model.config._name_or_path = path
    if tokenizer is not None:
        tokenizer.name_or_path = path
