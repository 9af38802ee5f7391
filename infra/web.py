"""The page: a private bucket behind CloudFront (origin access control, security headers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge, acknowledge_bucket_deployment, arn_pattern
from infra.storage import StorageStack, logged_bucket

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
# Images come from the media bucket or any https origin; the API from API Gateway.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob: https:; connect-src 'self' https://*.amazonaws.com; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)


class WebStack(Stack):
    """`frontend/` in a private bucket, served only through CloudFront. The API stack writes
    config.json (the API's URL) beside it, so this stack does not depend on the API."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        storage: StorageStack,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.bucket = logged_bucket(
            self,
            "Site",
            config=config,
            role="site",
            access_logs=storage.access_logs,
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=CONTENT_SECURITY_POLICY, override=True
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
                    override=True,
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365),
                    include_subdomains=True,
                    override=True,
                ),
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{config.name} search page",
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                response_headers_policy=headers,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            ),
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=storage.access_logs,
            log_file_prefix="cloudfront/",
        )
        s3deploy.BucketDeployment(
            self,
            "Page",
            sources=[s3deploy.Source.asset(str(FRONTEND), exclude=["config.json"])],
            destination_bucket=self.bucket,
            exclude=["config.json"],  # written by the API stack; never pruned from here
            distribution=self.distribution,
            distribution_paths=["/*"],
        )
        acknowledge_bucket_deployment(self, [f"{arn_pattern(self, self.bucket)}/*"])
        acknowledge(
            self.distribution,
            {
                "AwsSolutions-CFR1": "A public search page: no country is singled out.",
                "AwsSolutions-CFR2": "No WAF: the page is static and the API is throttled;"
                " add a WebACL when abuse shows up (about $5/month plus rules).",
                "AwsSolutions-CFR4": "The default *.cloudfront.net certificate: CloudFront then"
                " allows TLSv1 for old clients whatever the policy; a custom domain with an ACM"
                " certificate gets TLSv1.2_2021.",
            },
        )
