"""Build a tiny, randomly initialised causal LM in Hugging Face format from local text only.

Tests and the demo run need a model that loads with ``AutoModelForCausalLM.from_pretrained(dir)``
and ``AutoTokenizer.from_pretrained(dir)`` (and with vLLM, which reads the same files) but must
never download one. :func:`build_tiny_causal_lm` trains a byte-level BPE tokenizer on the given
corpus with ``tokenizers`` and saves a Llama-architecture model with random weights (hidden 64,
2 layers). It writes gibberish, which is fine: it exercises the plumbing (batching, stop strings,
parsing of malformed output, lineage), not quality.

Deterministic: the same corpus, seed and sizes give the same weights and the same tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

__all__ = ["BOS", "EOS", "PAD", "CHAT_TEMPLATE", "build_tiny_causal_lm"]

BOS = "<s>"
EOS = "</s>"
PAD = "<pad>"

# A minimal chat template so that the chat-prompt path of the engines is exercised. It does not
# emit the BOS token itself (the tokenizer's post-processor adds it once).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_causal_lm(
    directory: str | Path,
    corpus_texts: Sequence[str],
    seed: int = 0,
    *,
    vocab_size: int = 1000,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    max_position_embeddings: int = 2048,
) -> Path:
    """Write tokenizer + random-weight Llama model to ``directory``; returns the directory.

    ``num_heads`` defaults to 2 so the head dimension is 32, a size every attention backend
    (including vLLM's FlashAttention) supports.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    texts = [t for t in corpus_texts if t]
    if not texts:
        raise ValueError("corpus_texts is empty: the tokenizer needs some text to train on")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    # --- tokenizer: byte-level BPE, so any input text round-trips (no unknown tokens)
    special = [PAD, BOS, EOS]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sorted(texts), trainer=trainer)  # sorted: independent of input order
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, model_max_length=max_position_embeddings
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out))

    # --- model: random init under a fixed seed, on CPU, float32
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id
    )
    from dataplatform.llm.engine import quiet_loading

    with quiet_loading():
        model.save_pretrained(str(out))
    (out / "tiny_model.json").write_text(
        json.dumps({"builder": "dataplatform.llm.tiny_model", "seed": seed, "n_corpus_texts": len(texts)}, indent=2)
    )
    return out
