"""Orchestration: extract → load → dbt (CodeBuild) → publish, every few minutes.

Each task retries transient errors with backoff and catches everything else: the catch records
which step failed, publishes an alert (execution, step, error, cause) to the SNS topic, and ends
the execution in a Fail state (so ExecutionsFailed counts it too). A cycle whose extract or load
is throttled because another cycle holds that Lambda's single reserved slot ends as "skipped":
the running cycle and the next one cover the same rows (the steps are idempotent).

The full-table tests run on a schedule of their own (hourly by default): the cycle's builds
test only the rows that arrived since the last successful build (dbt_warehouse/README.md), so a
second rule starts the same CodeBuild project with `DBT_TESTS=full`, where run_dbt.sh runs
`dbt test` over every row and builds nothing. A failure fails that build, and the project's
FailedBuilds alarm (infra/aws/alerting.py) emails the topic, as for any build. The project runs
one build at a time, so the tests never see a half-built warehouse: a cycle whose dbt step
finds the full tests running retries until they end (CODEBUILD_TRANSIENT, up to 7.5 minutes);
a full-tests start that finds a cycle's build running is refused by CodeBuild, retried by
EventBridge's retry policy when it counts the refusal as retriable, and otherwise left to the
next hour's run (not measured in AWS: there is no account here).

One cycle at a time: the first state asks Step Functions for this state machine's RUNNING
executions (`states:ListExecutions` on this state machine only). When there is another besides
this one, the execution ends at once as "skipped" (Succeed: no alert, no ExecutionsFailed), so a
cycle that runs past the schedule's interval never overlaps the next one. Two executions started
at the same instant may both stand down; the next tick runs.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
]
THROTTLED = "Lambda.TooManyRequestsException"
CODEBUILD_TRANSIENT = ["CodeBuild.AccountLimitExceededException", "CodeBuild.ThrottlingException"]
CYCLE_TIMEOUT = Duration.minutes(25)
GUARD = "Check for another cycle"  # the first state
FULL_TESTS_EVERY_HOURS = 1
FULL_TESTS_ENV = {"DBT_TESTS": "full", "EXECUTION_ID": "full-tests"}  # what run_dbt.sh reads


class Orchestration(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        extract: lambda_.IFunction,
        load: lambda_.IFunction,
        publish: lambda_.IFunction,
        dbt_project: codebuild.IProject,
        topic: sns.ITopic,
        schedule_minutes: int,
        log_retention: logs.RetentionDays,
        key: kms.IKey,
        full_tests_every_hours: int = FULL_TESTS_EVERY_HOURS,
    ) -> None:
        super().__init__(scope, construct_id)

        failed = sfn.Fail(
            self,
            "Cycle failed",
            error_path="$.error.Error",
            cause_path="$.error.Cause",
        )
        notify = tasks.SnsPublish(
            self,
            "Alert",
            topic=topic,
            subject=sfn.JsonPath.format(
                "totes pipeline failed at {} ({})",
                sfn.JsonPath.string_at("$.failed_step"),
                sfn.JsonPath.string_at("$$.Execution.Name"),
            ),
            message=sfn.TaskInput.from_object(
                {
                    "alert": "totes-cycle-failed",
                    "stage": stage,
                    "execution_id": sfn.JsonPath.execution_id,
                    "failed_step": sfn.JsonPath.string_at("$.failed_step"),
                    "error": sfn.JsonPath.string_at("$.error.Error"),
                    "cause": sfn.JsonPath.string_at("$.error.Cause"),
                    "summary": sfn.JsonPath.format(
                        "Step {} of execution {} failed: {}",
                        sfn.JsonPath.string_at("$.failed_step"),
                        sfn.JsonPath.execution_id,
                        sfn.JsonPath.string_at("$.error.Error"),
                    ),
                    "started_at": sfn.JsonPath.string_at("$$.Execution.StartTime"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
        )
        notify.add_retry(
            errors=[
                "SNS.SdkClientException",
                "SNS.InternalErrorException",
                "SNS.ThrottledException",
            ],
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2,
        )
        # If even the alert cannot be sent, the execution still fails (and its alarm fires).
        notify.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.alert_error")
        notify.next(failed)

        skipped = sfn.Succeed(
            self,
            "Skipped: another cycle is running",
            comment="Another execution is running (found by the guard, or it holds the single "
            "slot of a throttled extract/load): this one stands down.",
        )

        name = f"totes-{stage}-pipeline"
        guard_step = self._guard_step(name)
        extract_step = self._lambda_step("Extract", extract, Duration.minutes(10), "$.extract")
        load_step = self._lambda_step("Load", load, Duration.minutes(15), "$.load")
        dbt_step = tasks.CodeBuildStartBuild(
            self,
            "dbt build",
            project=dbt_project,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            environment_variables_override={
                "EXECUTION_ID": codebuild.BuildEnvironmentVariable(value=sfn.JsonPath.execution_id),
            },
            result_selector={
                "build_id": sfn.JsonPath.string_at("$.Build.Id"),
                "status": sfn.JsonPath.string_at("$.Build.BuildStatus"),
            },
            result_path="$.dbt",
            task_timeout=sfn.Timeout.duration(Duration.minutes(22)),
        )
        dbt_step.add_retry(
            errors=CODEBUILD_TRANSIENT,
            interval=Duration.seconds(30),
            max_attempts=4,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        dbt_step.add_retry(
            errors=[sfn.Errors.TIMEOUT], interval=Duration.seconds(30), max_attempts=1
        )
        publish_step = self._lambda_step("Publish", publish, Duration.minutes(10), "$.publish")

        for step in (extract_step, load_step):
            step.add_catch(skipped, errors=[THROTTLED], result_path="$.error")
        for step in (guard_step, extract_step, load_step, dbt_step, publish_step):
            record = sfn.Pass(
                self,
                f"{step.node.id} failed",
                result=sfn.Result.from_string(step.node.id),
                result_path="$.failed_step",
            )
            record.next(notify)
            step.add_catch(record, errors=[sfn.Errors.ALL], result_path="$.error")

        alone = (
            sfn.Choice(self, "Alone?")
            .when(sfn.Condition.number_greater_than("$.guard.running", 1), skipped)
            .otherwise(extract_step)
        )
        extract_step.next(load_step).next(dbt_step).next(publish_step).next(
            sfn.Succeed(self, "Cycle complete")
        )
        definition = guard_step.next(alone)

        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/totes/{stage}/states/pipeline",
            retention=log_retention,
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "Pipeline",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=CYCLE_TIMEOUT,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                include_execution_data=True,
            ),
        )

        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"Start a pipeline cycle every {schedule_minutes} minute(s).",
            schedule=events.Schedule.rate(Duration.minutes(schedule_minutes)),
            targets=[
                targets.SfnStateMachine(
                    self.state_machine,
                    input=events.RuleTargetInput.from_object({"trigger": "schedule"}),
                    retry_attempts=2,
                    max_event_age=Duration.minutes(schedule_minutes),
                )
            ],
        )

        self.full_tests = events.Rule(
            self,
            "FullTestsSchedule",
            description=(
                f"Run every dbt data test over every row every {full_tests_every_hours} hour(s);"
                " the cycle's builds test the new rows only."
            ),
            schedule=events.Schedule.rate(Duration.hours(full_tests_every_hours)),
            targets=[
                targets.CodeBuildProject(
                    dbt_project,
                    # The StartBuild request: the same job, told to run the full tests.
                    event=events.RuleTargetInput.from_object(
                        {
                            "environmentVariablesOverride": [
                                {"name": name, "value": value, "type": "PLAINTEXT"}
                                for name, value in FULL_TESTS_ENV.items()
                            ]
                        }
                    ),
                    retry_attempts=2,
                    max_event_age=Duration.minutes(30),
                )
            ],
        )

    def _guard_step(self, state_machine_name: str) -> tasks.CallAwsService:
        """How many executions of this state machine are running, this one included.

        The ARN is built from the name, not read from the state machine: its role's policy
        cannot refer to the state machine it belongs to (a circular dependency). Two results
        are enough to tell "alone" from "not alone".
        """
        arn = Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        step = tasks.CallAwsService(
            self,
            GUARD,
            service="sfn",
            action="listExecutions",
            iam_action="states:ListExecutions",
            iam_resources=[arn],
            parameters={
                "StateMachineArn": sfn.JsonPath.string_at("$$.StateMachine.Id"),
                "StatusFilter": "RUNNING",
                "MaxResults": 2,
            },
            result_selector={
                "running": sfn.JsonPath.array_length(sfn.JsonPath.list_at("$.Executions"))
            },
            result_path="$.guard",
            task_timeout=sfn.Timeout.duration(Duration.minutes(1)),
        )
        step.add_retry(
            errors=[sfn.Errors.ALL],
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return step

    def _lambda_step(
        self, name: str, function: lambda_.IFunction, timeout: Duration, result_path: str
    ) -> tasks.LambdaInvoke:
        """Invoke with the state as the event; keep the function's result under result_path."""
        step = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=function,
            retry_on_service_exceptions=False,
            result_selector={"result": sfn.JsonPath.object_at("$.Payload")},
            result_path=result_path,
            # A little longer than the function's own timeout: States.Timeout means a lost call.
            task_timeout=sfn.Timeout.duration(timeout.plus(Duration.minutes(1))),
        )
        step.add_retry(
            errors=LAMBDA_TRANSIENT,
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        step.add_retry(
            errors=[THROTTLED], interval=Duration.seconds(10), max_attempts=3, backoff_rate=2
        )
        step.add_retry(errors=[sfn.Errors.TIMEOUT], interval=Duration.seconds(30), max_attempts=1)
        return step
