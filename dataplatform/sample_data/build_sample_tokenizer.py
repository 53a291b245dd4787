"""Train the bundled sample tokenizer (byte-level BPE) on the sample crawl and the quality reference set.

    python -m dataplatform.sample_data.build_sample_tokenizer

The default run counts tokens with it so that no tokenizer is fetched from a hub; real
deployments point ``tokenizer_path`` at their model's ``tokenizer.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dataplatform.sample_data import SAMPLE_CRAWL_ROOT, SAMPLE_DATA_DIR

TOKENIZER_PATH = SAMPLE_DATA_DIR / "tokenizer" / "sample-bpe-4k.json"
VOCAB_SIZE = 4096


def corpus() -> list[str]:
    from dataplatform.core.html_extraction import extract_document
    from dataplatform.core.quality_classifier import default_positives
    from dataplatform.core.warc_records import iter_raw_page_batches

    texts = list(default_positives())
    for path in sorted(SAMPLE_CRAWL_ROOT.rglob("*.warc.gz")):
        for kind, batch in iter_raw_page_batches(str(path), snapshot="s", warc_file=path.name):
            if kind == "pages":
                for payload, content_type in zip(batch.column("payload").to_pylist(), batch.column("content_type").to_pylist()):
                    extracted = extract_document(payload, content_type)
                    if extracted.text:
                        texts.append(extracted.text)
    return texts


def build(out: Path = TOKENIZER_PATH) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus(), trainer=trainer)
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out))
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=TOKENIZER_PATH)
    print(build(parser.parse_args().out))
