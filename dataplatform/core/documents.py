"""``raw_pages`` rows -> ``documents`` rows: extracted text, title, language, stable id.

Every input page yields exactly one document row; pages that cannot become text keep their row
with ``text`` null/empty and a ``quarantine:*`` drop_reason, so nothing disappears silently.
"""

from __future__ import annotations

import pyarrow as pa

from dataplatform.core.html_extraction import ExtractionOptions, extract_document
from dataplatform.core.ids import document_id
from dataplatform.core.language_id import FastTextLanguageIdentifier
from dataplatform.core.schemas import DOCUMENTS


def pages_to_documents(
    pages: pa.RecordBatch | pa.Table,
    language_identifier: FastTextLanguageIdentifier,
    options: ExtractionOptions = ExtractionOptions(),
) -> pa.Table:
    columns = pages.to_pydict() if isinstance(pages, pa.Table) else pa.Table.from_batches([pages]).to_pydict()
    n = len(columns["url"])
    texts: list[str | None] = []
    titles: list[str | None] = []
    reasons: list[str | None] = []
    # HTML parsing is per page by nature (one DOM each); everything after it is batched.
    for payload, content_type in zip(columns["payload"], columns["content_type"]):
        extracted = extract_document(payload, content_type, options)
        texts.append(extracted.text)
        titles.append(extracted.title)
        reasons.append(extracted.drop_reason)
    languages, scores = language_identifier.predict([t if r is None else None for t, r in zip(texts, reasons)])
    return (
        pa.table(
            {
                "doc_id": [document_id(u, r) for u, r in zip(columns["url"], columns["warc_record_id"])],
                "url": columns["url"],
                "snapshot": columns["snapshot"],
                "warc_record_id": columns["warc_record_id"],
                "warc_file": columns["warc_file"],
                "fetch_time": columns["fetch_time"],
                "text": texts,
                "title": titles,
                "language": languages,
                "language_score": scores,
                "n_chars": [len(t) if t else 0 for t in texts],
                "drop_reason": reasons,
            },
            schema=DOCUMENTS,
        )
        if n
        else DOCUMENTS.empty_table()
    )
