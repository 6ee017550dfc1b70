"""Alerting: one SNS topic with an email subscription, and an alarm on every failure path.

Every alarm's action is the topic, so every failure reaches the subscribed address:
- each Lambda's `Errors` (an invocation raised or timed out);
- each Lambda's ERROR-level JSON log lines (`{ $.level = "ERROR" }` metric filters), which
  also catch errors a handler logged and survived;
- the state machine's ExecutionsFailed, ExecutionsTimedOut and ExecutionsAborted;
- the CodeBuild project's FailedBuilds (dbt build, tests, or `dbt source freshness` past its
  30-minute error threshold);
- the schedule rule's FailedInvocations (EventBridge could not start the state machine);
- freshness: `Totes/Pipeline FreshnessLagSeconds` (published by the dbt step from
  `dbt source freshness`) above 30 minutes, and the same metric missing for 30 minutes
  (the pipeline has stopped measuring, so it has stopped running).
The state machine itself also publishes a message to the topic when any step fails.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

PIPELINE_NAMESPACE = "Totes/Pipeline"
LOGS_NAMESPACE = "Totes/Logs"
FIVE_MINUTES = Duration.minutes(5)


class Alerting(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        alert_email: str,
        key: kms.IKey,
        freshness_threshold_seconds: int = 1800,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stage = stage
        self.freshness_threshold_seconds = freshness_threshold_seconds
        self.topic = sns.Topic(
            self,
            "AlertTopic",
            display_name=f"Terrific Totes pipeline alerts ({stage})",
            enforce_ssl=True,
            # Alerts carry error messages and causes; the key policy lets alarms publish.
            master_key=key,
        )
        self.topic.add_subscription(subscriptions.EmailSubscription(alert_email))
        # The topic has a resource policy (TLS only), so CloudWatch alarms need an explicit
        # allow; scoped to alarms of this account.
        self.topic.grant_publish(
            iam.ServicePrincipal(
                "cloudwatch.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        self.alarms: list[cloudwatch.Alarm] = []

    def watch_function(
        self, step: str, function: lambda_.IFunction, log_group: logs.ILogGroup
    ) -> None:
        self._alarm(
            f"{step.title()}Errors",
            function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
            f"The {step} Lambda raised or timed out.",
        )
        log_filter = logs.MetricFilter(
            self,
            f"{step.title()}ErrorLogFilter",
            log_group=log_group,
            filter_pattern=logs.FilterPattern.string_value("$.level", "=", "ERROR"),
            metric_namespace=LOGS_NAMESPACE,
            metric_name=f"{self.stage}-{step}-ErrorLines",
            metric_value="1",
            default_value=0,
        )
        self._alarm(
            f"{step.title()}ErrorLogs",
            log_filter.metric(period=FIVE_MINUTES, statistic="Sum"),
            f"The {step} Lambda logged an ERROR line.",
        )

    def watch_state_machine(self, state_machine: sfn.StateMachine) -> None:
        for name, metric, what in (
            ("ExecutionsFailed", state_machine.metric_failed, "failed"),
            ("ExecutionsTimedOut", state_machine.metric_timed_out, "timed out"),
            ("ExecutionsAborted", state_machine.metric_aborted, "was aborted"),
        ):
            self._alarm(
                f"Cycle{name}",
                metric(period=FIVE_MINUTES, statistic="Sum"),
                f"A pipeline cycle (state machine execution) {what}.",
            )

    def watch_build(self, project: codebuild.IProject) -> None:
        self._alarm(
            "DbtFailedBuilds",
            project.metric_failed_builds(period=FIVE_MINUTES, statistic="Sum"),
            "The dbt CodeBuild project failed: dbt build, a test, or source freshness.",
        )

    def watch_schedule(self, rule: events.IRule) -> None:
        self._alarm(
            "ScheduleFailedInvocations",
            cloudwatch.Metric(
                namespace="AWS/Events",
                metric_name="FailedInvocations",
                dimensions_map={"RuleName": rule.rule_name},
                period=FIVE_MINUTES,
                statistic="Sum",
            ),
            "EventBridge could not start the pipeline's state machine.",
        )

    def watch_freshness(self) -> None:
        lag = cloudwatch.Metric(
            namespace=PIPELINE_NAMESPACE,
            metric_name="FreshnessLagSeconds",
            dimensions_map={"Stage": self.stage},
            period=FIVE_MINUTES,
            statistic="Maximum",
        )
        self._alarm(
            "FreshnessLag",
            lag,
            "The marts are more than 30 minutes behind totesys (dbt source freshness).",
            threshold=self.freshness_threshold_seconds,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self._alarm(
            "FreshnessNotMeasured",
            lag.with_(statistic="SampleCount", period=Duration.minutes(10)),
            "No freshness measurement for 30 minutes: the pipeline is not completing cycles.",
            threshold=1,
            comparison=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=3,
            missing=cloudwatch.TreatMissingData.BREACHING,
        )

    def _alarm(
        self,
        construct_id: str,
        metric: cloudwatch.IMetric,
        description: str,
        *,
        threshold: float = 1,
        comparison: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
        evaluation_periods: int = 1,
        missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=f"[totes {self.stage}] {description}",
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            treat_missing_data=missing,
        )
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        return alarm
