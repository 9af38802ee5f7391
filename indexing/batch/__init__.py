"""Batch indexing on AWS Step Functions: validate a corpus in S3, split it into shards, embed
each shard (Lambda or a SageMaker processing job, the same code), then build, verify and
switch a collection alias so readers never see a half-built index."""
