"""Indexed images in AWS: the indexing function publishes originals and thumbnails into the
media bucket under media/, and CloudFront serves that bucket at /media/* (origin access
control, in every variant, whoever may call the API), so the URLs image hits carry resolve."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Template

from indexing.media import S3_PREFIX, S3Media
from tests.infra.conftest import Synth

CLOUDFRONT = "cloudfront.amazonaws.com"


def single(template: Template, kind: str) -> tuple[str, dict[str, Any]]:
    found = template.find_resources(kind)
    assert len(found) == 1, (kind, list(found))
    return next(iter(found.items()))


def media_bucket(web: Template) -> tuple[str, dict[str, Any]]:
    buckets = web.find_resources("AWS::S3::Bucket")
    (found,) = [(i, b) for i, b in buckets.items() if "-media-" in json.dumps(b)]
    return found


def indexer_environment(indexing: Template) -> dict[str, Any]:
    functions = indexing.find_resources("AWS::Lambda::Function")
    (function,) = [
        f
        for f in functions.values()
        if f["Properties"].get("Handler") == "indexing.batch.handler.handler"
    ]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


def test_every_variant_serves_the_media_bucket_at_media_through_cloudfront(
    synthesized: dict[str, Synth],
) -> None:
    for name, synth in synthesized.items():
        web = synth.templates["web"]
        bucket_id, bucket = media_bucket(web)
        _, distribution = single(web, "AWS::CloudFront::Distribution")
        config = distribution["Properties"]["DistributionConfig"]
        behaviours = {b["PathPattern"]: b for b in config.get("CacheBehaviors", [])}
        assert "/media/*" in behaviours, (name, list(behaviours))
        media = behaviours["/media/*"]
        assert media["ViewerProtocolPolicy"] == "redirect-to-https"
        origin = next(o for o in config["Origins"] if o["Id"] == media["TargetOriginId"])
        assert origin["DomainName"] == {"Fn::GetAtt": [bucket_id, "RegionalDomainName"]}
        assert "OriginAccessControlId" in origin, name
        policies = web.find_resources("AWS::S3::BucketPolicy")
        (policy,) = [
            p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": bucket_id}
        ]
        reads = [
            s
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
            if s["Effect"] == "Allow"
            and s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}
        ]
        assert reads and all(s["Action"] == "s3:GetObject" for s in reads), name
        assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True


def test_the_indexing_function_publishes_into_that_bucket_and_names_its_urls(
    synthesized: dict[str, Synth],
) -> None:
    for name, synth in synthesized.items():
        _, bucket = media_bucket(synth.templates["web"])
        environment = indexer_environment(synth.templates["indexing"])
        assert environment["MMSEARCH_MEDIA_BUCKET"] == bucket["Properties"]["BucketName"], name
        base_url = json.dumps(environment["MMSEARCH_MEDIA_BASE_URL"])
        assert "https://" in base_url and "/media" in base_url, name
        policies = json.dumps(synth.templates["indexing"].find_resources("AWS::IAM::Policy"))
        assert "-media-" in policies and f"/{S3_PREFIX}*" in policies, name


def test_a_published_url_names_the_key_cloudfront_forwards_to_the_media_bucket() -> None:
    # CloudFront forwards a /media/* request's path as the S3 key: the URL's path less its
    # leading slash must be the key S3Media wrote.
    base = "https://d111111abcdef8.cloudfront.net/media"
    media = S3Media(None, "bucket", base)
    url = f"{base}/thumbs/{'a' * 64}.webp"
    path = url.removeprefix("https://d111111abcdef8.cloudfront.net")
    assert path.startswith("/media/")
    assert media.key(url) == path.removeprefix("/")
