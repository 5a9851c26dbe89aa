# Every way a night can go wrong reaches the SNS topic: a task that stopped with a non-zero exit or
# never started, a schedule that could not start it, an alert that could not be delivered, and no
# complete run of an org in 26 hours.

# A customer-managed key: the AWS-managed alias/aws/sns key's policy cannot grant EventBridge or
# CloudWatch, whose publishes to the topic would then fail (FailedInvocations), silently.
resource "aws_kms_key" "alerts" {
  description         = "${var.name} alert topic encryption"
  enable_key_rotation = true
  policy = templatefile("${path.module}/alerts-key-policy.json.tftpl", {
    partition  = local.partition
    account_id = local.account_id
  })
}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = aws_kms_key.alerts.arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alert_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

data "aws_iam_policy_document" "alerts_topic" {
  statement {
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.failed_run.arn]
    }
  }
  statement {
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}

# A stopped task whose flowvault container exited non-zero (1 fatal, 2 settings, 3 incomplete,
# 124 overran, 137 killed), or that never started (image pull, secrets: no exit code at all).
resource "aws_cloudwatch_event_rule" "failed_run" {
  name          = "${var.name}-failed-run"
  description   = "A flowvault task stopped with a non-zero exit code or failed to start."
  event_pattern = templatefile("${path.module}/failed-run-pattern.json.tftpl", { cluster_arn = aws_ecs_cluster.this.arn })
}

resource "aws_cloudwatch_event_target" "failed_run" {
  rule = aws_cloudwatch_event_rule.failed_run.name
  arn  = aws_sns_topic.alerts.arn
  retry_policy {
    maximum_retry_attempts       = 24
    maximum_event_age_in_seconds = 86400
  }
  dead_letter_config {
    arn = aws_sqs_queue.undelivered.arn
  }
}

data "aws_iam_policy_document" "undelivered" {
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.undelivered.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.failed_run.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "undelivered" {
  queue_url = aws_sqs_queue.undelivered.id
  policy    = data.aws_iam_policy_document.undelivered.json
}

# The scheduler gave up on a schedule (its retries exhausted, or no dead-letter delivery either).
resource "aws_cloudwatch_metric_alarm" "schedule_dropped" {
  for_each = toset(["InvocationDroppedCount", "InvocationsFailedToBeSentToDeadLetterCount"])

  alarm_name          = "${var.name}-scheduler-${each.key}"
  alarm_description   = "EventBridge Scheduler could not start a flowvault task (${each.key}): that night has no backup."
  namespace           = "AWS/Scheduler"
  metric_name         = each.key
  dimensions          = { ScheduleGroup = "default" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}

resource "aws_cloudwatch_metric_alarm" "undelivered" {
  alarm_name          = "${var.name}-undelivered"
  alarm_description   = "A schedule or an alert could not be delivered: read the messages in ${aws_sqs_queue.undelivered.name}."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.undelivered.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
}

# "No complete run in 26 h", like the Kubernetes rule: a complete run logs `"complete":true` on its
# "run finished" line (JSON logs); 26 hourly periods without one alarm, and so does an org that has
# never completed a run (missing data is breaching).
resource "aws_cloudwatch_log_metric_filter" "complete_run" {
  for_each       = var.orgs
  name           = "${var.name}-${each.key}-complete-run"
  log_group_name = aws_cloudwatch_log_group.job[each.key].name
  pattern        = "{ $.complete IS TRUE }"
  metric_transformation {
    namespace = "Flowvault"
    name      = "CompleteRuns-${each.key}"
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "no_complete_run" {
  for_each            = var.orgs
  alarm_name          = "${var.name}-${each.key}-no-complete-run"
  alarm_description   = "No complete flow backup of org ${each.key} in 26 hours: check the task's logs and `flowvault runs`."
  namespace           = "Flowvault"
  metric_name         = "CompleteRuns-${each.key}"
  statistic           = "Sum"
  period              = 3600
  evaluation_periods  = 26
  datapoints_to_alarm = 26
  threshold           = 1
  comparison_operator = "LessThanThreshold"
  treat_missing_data  = "breaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}
