# Fargate tasks, one per org, each with its own task role (that org's policy only), started
# nightly by EventBridge Scheduler with retries and a dead-letter queue.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

# The execution role's resource list needs the secrets' ARNs, not ECS's `ARN:json-key::` references.
module "secret_arns" {
  source     = "../secret-arns"
  references = flatten([for o in var.orgs : [o.client_id_secret_arn, o.client_secret_secret_arn]])
}

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

# One log group per org, so each org's "complete run" metric (alerts.tf) counts only its runs.
resource "aws_cloudwatch_log_group" "job" {
  for_each          = var.orgs
  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# One task role per org, holding only that org's policy (PREFIX/ORG/*).
resource "aws_iam_role" "task" {
  for_each           = var.orgs
  name               = "${var.name}-${each.key}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "task" {
  for_each   = var.orgs
  role       = aws_iam_role.task[each.key].name
  policy_arn = var.job_policy_arns[each.key]
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  statement {
    actions   = ["secretsmanager:GetSecretValue"]
    resources = module.secret_arns.resources
  }
  dynamic "statement" {
    for_each = var.secrets_kms_key_arn == "" ? [] : [var.secrets_kms_key_arn]
    content {
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}

resource "aws_ecs_task_definition" "job" {
  for_each                 = var.orgs
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task[each.key].arn
  runtime_platform {
    operating_system_family = "LINUX"
    # The image must be built for this architecture (docker buildx build --platform, infra/README.md).
    cpu_architecture = var.cpu_architecture
  }
  # Writable scratch under a read-only root: spooled manifest rows, and the previous tar.gz
  # unpacked for --since (Fargate's task storage). The image declares VOLUME ["/tmp"], so Fargate
  # gives the mount the image's ownership (the non-root user), not root 0755.
  volume {
    name = "tmp"
  }
  container_definitions = templatefile("${path.module}/container-definitions.json.tftpl", {
    image                = var.image
    genesys_region       = var.genesys_region
    expected_org         = each.value.genesys_org
    destination          = "s3://${var.bucket}/${var.prefix}/${each.key}"
    kms_key_arn          = var.kms_key_arn
    aws_region           = var.region
    client_id_secret     = each.value.client_id_secret_arn
    client_secret_secret = each.value.client_secret_secret_arn
    log_group            = aws_cloudwatch_log_group.job[each.key].name
  })
}

# ---- Nightly schedule: retried, and what cannot be delivered lands in a queue that alarms ------

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler_run_task" {
  statement {
    actions   = ["ecs:RunTask"]
    resources = flatten([for td in aws_ecs_task_definition.job : [td.arn_without_revision, "${td.arn_without_revision}:*"]])
  }
  statement {
    actions   = ["iam:PassRole"]
    resources = concat([for r in aws_iam_role.task : r.arn], [aws_iam_role.execution.arn])
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.undelivered.arn]
  }
}

resource "aws_iam_role_policy" "scheduler_run_task" {
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler_run_task.json
}

# Schedules the scheduler could not start (after its retries) and alerts EventBridge could not
# deliver; a message here alarms (alerts.tf).
resource "aws_sqs_queue" "undelivered" {
  name                      = "${var.name}-undelivered"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_scheduler_schedule" "nightly" {
  for_each                     = var.orgs
  name                         = "${var.name}-${each.key}-nightly"
  schedule_expression          = each.value.schedule_expression
  schedule_expression_timezone = "Etc/UTC"
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.scheduler.arn
    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.job[each.key].arn_without_revision
      launch_type         = "FARGATE"
      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = var.security_group_ids
        assign_public_ip = var.assign_public_ip
      }
    }
    # Retries are for RunTask itself (capacity, throttling): a task that started and exited
    # non-zero is not re-run by the scheduler but alerts (alerts.tf).
    retry_policy {
      maximum_retry_attempts       = 3
      maximum_event_age_in_seconds = 3600
    }
    dead_letter_config {
      arn = aws_sqs_queue.undelivered.arn
    }
  }
}
