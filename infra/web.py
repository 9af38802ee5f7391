"""The page: a private bucket behind CloudFront (origin access control, security headers),
with the HTTP API behind the same distribution under `/v1/*`, so the page calls its own origin.

The page sends no token and signs nothing, so it is served only with `auth=none`; with `jwt`
or `iam` the API is for programs, and the distribution serves a notice saying so (output
`Served`). Auth modes are API-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge, acknowledge_bucket_deployment, arn_pattern
from infra.storage import StorageStack, logged_bucket

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
# Images come from the media bucket or any https origin; the API is this origin's /v1/*.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob: https:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
API_PATH = "/v1/*"
MEDIA_PATH = "/media/*"  # the media bucket's media/ keys, as indexing/media.py S3Media writes
# What the distribution shows instead of the page when the API needs a token or a signature.
AUTH_NOTICE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>mmsearch</title>"
    "<p>This deployment's API takes {auth} callers only; the search page sends neither, so it"
    " is served only with <code>auth=none</code>. Call the API directly (README, Deploy to"
    " AWS).</p></html>"
)


class WebStack(Stack):
    """`frontend/` in a private bucket, served only through CloudFront, which also forwards
    `/v1/*` to the HTTP API (uncached): the page's config.json says `apiBaseUrl: ""`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        storage: StorageStack,
        api: apigwv2.IHttpApi,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.serves_page = config.auth == "none"
        self.bucket = logged_bucket(
            self,
            "Site",
            config=config,
            role="site",
            access_logs=storage.access_logs,
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
        )
        # Image originals and thumbnails that indexing publishes (indexing/media.py S3Media,
        # keys media/…), served at /media/*. Derived from the corpora in the data bucket: it
        # goes with this stack, and re-running a corpus refills it.
        self.media = logged_bucket(
            self,
            "Media",
            config=config,
            role="media",
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
            additional_behaviors={
                MEDIA_PATH: cloudfront.BehaviorOptions(
                    origin=origins.S3BucketOrigin.with_origin_access_control(self.media),
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                    response_headers_policy=headers,
                    cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                ),
                **({API_PATH: self._api_behavior(api, headers)} if self.serves_page else {}),
            },
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            enable_logging=True,
            log_bucket=storage.access_logs,
            log_file_prefix="cloudfront/",
        )
        if self.serves_page:
            # frontend/config.json holds {"apiBaseUrl": ""}: the API is this origin's /v1/*.
            source = s3deploy.Source.asset(str(FRONTEND))
            page = "the search page; its API under /v1/"
        else:
            source = s3deploy.Source.data(
                "index.html",
                AUTH_NOTICE.format(auth="JWT-bearing" if config.auth == "jwt" else "IAM-signed"),
            )
            page = (
                f"not served: auth={config.auth} makes the API token-only and the page sends"
                " no token (auth modes are API-only; deploy with auth=none for the page)"
            )
        s3deploy.BucketDeployment(
            self,
            "Page",
            sources=[source],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],
        )
        CfnOutput(self, "Served", value=page, description="What the distribution serves")
        CfnOutput(self, "PageUrl", value=f"https://{self.distribution.distribution_domain_name}")
        # Where indexed images are published; image hits carry URLs under it.
        self.media_base_url = f"https://{self.distribution.distribution_domain_name}/media"
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

    @staticmethod
    def _api_behavior(
        api: apigwv2.IHttpApi, headers: cloudfront.IResponseHeadersPolicy
    ) -> cloudfront.BehaviorOptions:
        """`/v1/*` to the HTTP API: every method, nothing cached, the viewer's headers, query
        and body forwarded (but not its Host: API Gateway routes by its own)."""
        domain = f"{api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
        return cloudfront.BehaviorOptions(
            origin=origins.HttpOrigin(
                domain, protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY
            ),
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
            cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
            origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
            response_headers_policy=headers,
        )
