"""Every request and storage limit, in one place: the request schemas, `Settings`, the stores,
the CLI's remote writer and the docs import them from here (a test keeps the literals out of
every other module).

Hard ceilings are what the schemas and the Milvus fields can hold; `Settings` may configure
lower limits (`MMSEARCH_MAX_*`), never higher ones."""

from __future__ import annotations

# Request bodies: larger is a 413. AWS lowers it (infra/api.py: a Lambda event is 6 MB).
MAX_BODY_BYTES = 5 * 2**20

# Names: a scene (the request's `scene`), a document field (filters, facets, experiments),
# an extra text model (/v1/embed), a caller's user id (experiment bucketing).
SCENE_NAME_MAX_LENGTH = 64
FIELD_NAME_MAX_LENGTH = 64
MODEL_NAME_MAX_LENGTH = 64
USER_ID_MAX_LENGTH = 256
# A document id; Milvus stores it percent-escaped, up to 4 bytes a character.
ID_MAX_LENGTH = 512

# Milvus limits on what sits beside a vector: one keyword, and the values of one keyword
# list (an ARRAY field's capacity); a filter lists at most as many values as a list holds.
FILTER_VALUE_MAX_LENGTH = 256
FILTER_MAX_VALUES = 64
# Fields one search may filter on: the schema's ceiling and the configured default.
FILTER_FIELDS_CEILING = 16
MAX_FILTER_FIELDS = 4
FACET_FIELDS_CEILING = 8
# Experiments a debug request may force: one per layer (qp, match, rank, summary).
MAX_FORCED_EXPERIMENTS = 4

# Hits one search may ask for (top_k), and how deep pages go by default (offset + top_k).
MAX_TOP_K = 100
DEFAULT_MAX_RESULTS = 1000
MAX_RESULTS_CEILING = 10_000
PAGE_TOKEN_MAX_LENGTH = 256
MAX_QUERY_CHARS = 1000

# POST /v1/embed: texts or base64 images per request.
MAX_EMBED_TEXTS = 64
MAX_EMBED_IMAGES = 8

# Writes. 100 documents embed in ~1 s on one core (the MiniLM model, ~10 ms a document);
# bigger deltas are split by the caller (`mmsearch index --mode upsert` does it).
MAX_UPSERT_DOCUMENTS = 100
# Deletes embed nothing: a Milvus delete of 1,000 ids is one filter expression.
MAX_DELETE_IDS = 1000
# POST /v1/documents:batchGet: the ids of one page of hits, and then some.
MAX_GET_IDS = 1000
