"""One dashboard and the alarms someone should be woken for: errors, latency, throttles,
failed indexing runs.

Functions are named by their physical names (`infra.config.function_name`), plain strings:
a strong cross-stack export of a function's name would block the api stack from removing that
function (switching `split_functions`) while this stack still imports it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.config import DeployConfig

MINUTE = Duration.minutes(1)


def function_metric(name: str, metric: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    """AWS/Lambda's `metric` of the function named `name` (all its versions and aliases)."""
    return cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name=metric,
        dimensions_map={"FunctionName": name},
        statistic=statistic,
        period=period,
        label=f"{name} {metric}",
    )


class ObservabilityStack(Stack):
    """Dashboard `<name>` and alarms on the API (5xx rate, p99 latency), every function
    (errors, throttles) and the indexing state machine (failed executions), sent to SNS."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        api: apigwv2.HttpApi,
        functions: dict[str, str],
        state_machine: sfn.IStateMachine | None,
        **kwargs: Any,
    ) -> None:
        """`functions`: {label: physical function name} of every function to watch."""
        super().__init__(scope, construct_id, **kwargs)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name=f"{config.name} alarms",
            enforce_ssl=True,
            master_key=self._topic_key(),
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.alarms: list[cloudwatch.Alarm] = []

        requests = api.metric_count(period=MINUTE, statistic="Sum")
        errors = api.metric_server_error(period=MINUTE, statistic="Sum")
        error_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={"requests": requests, "errors": errors},
            label="5xx rate (%)",
            period=MINUTE,
        )
        p99 = api.metric_latency(period=MINUTE, statistic="p99")
        self._alarm("Api5xxRate", error_rate, config.alarm_5xx_percent, 3, "API 5xx rate above")
        self._alarm("ApiP99Latency", p99, config.alarm_p99_ms, 5, "API p99 latency (ms) above")
        for label, name in functions.items():
            throttles = function_metric(name, "Throttles", "Sum", MINUTE)
            self._alarm(f"{label.title()}Throttles", throttles, 0, 5, f"{label} throttles above")
        if state_machine is not None:
            failed = state_machine.metric_failed(period=MINUTE, statistic="Sum")
            self._alarm("IndexingFailed", failed, 0, 1, "failed indexing runs above")

        widgets: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(title="Requests and 5xx", left=[requests, errors], width=12),
            cloudwatch.GraphWidget(
                title="Latency (ms)",
                left=[api.metric_latency(period=MINUTE, statistic=s) for s in ("p50", "p99")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function duration p99 (ms)",
                left=[function_metric(n, "Duration", "p99", MINUTE) for n in functions.values()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function errors and throttles",
                left=[
                    function_metric(n, metric, "Sum", MINUTE)
                    for metric in ("Errors", "Throttles")
                    for n in functions.values()
                ],
                width=12,
            ),
        ]
        if state_machine is not None:
            widgets.append(
                cloudwatch.GraphWidget(
                    title="Indexing runs",
                    left=[
                        state_machine.metric_succeeded(period=Duration.hours(1)),
                        state_machine.metric_failed(period=Duration.hours(1)),
                    ],
                    width=12,
                )
            )
        widgets.append(cloudwatch.AlarmStatusWidget(alarms=self.alarms, width=12))
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=config.name)
        for i in range(0, len(widgets), 2):
            self.dashboard.add_widgets(*widgets[i : i + 2])

    def _topic_key(self) -> kms.Key:
        """A customer-managed key CloudWatch may use: alarms cannot publish to a topic under
        the AWS-managed `alias/aws/sns`, whose policy no one can extend to CloudWatch."""
        key = kms.Key(
            self,
            "AlarmsKey",
            description="mmsearch alarm topic: CloudWatch alarms publish through this key",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        return key

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        periods: int,
        text: str,
    ) -> None:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{text} {threshold:g} for {periods} minute(s)",
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
