"""The bounds of one write request, in one place (the API, the CLI's remote writer and the
docs read them from here)."""

# 100 documents embed in ~1 s on one core (the MiniLM model, ~10 ms a document); bigger
# deltas are split by the caller (`mmsearch index --mode upsert` does it).
MAX_UPSERT_DOCUMENTS = 100
# Deletes embed nothing: a Milvus delete of 1,000 ids is one filter expression.
MAX_DELETE_IDS = 1000
