"""The torch-free indexing side: corpora, the indexer, media, and the batch steps that Lambda and
SageMaker run. `offline/` (export, training, evaluation, benchmarks, the CLI) builds on it."""
