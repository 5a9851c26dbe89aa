# An S3 bucket for flowvault archives, a least-privilege role for the job, and a Fargate task
# that EventBridge Scheduler runs nightly. Secrets come from Secrets Manager.

data "aws_caller_identity" "current" {}

locals {
  # One job per org: `var.orgs`, or the single org the top-level variables describe. Each org's runs
  # go under PREFIX/ORG_KEY, and each job may write only there.
  orgs = length(var.orgs) > 0 ? var.orgs : {
    (var.genesys_org) = {
      genesys_org              = var.genesys_org
      client_id_secret_arn     = var.genesys_client_id_secret_arn
      client_secret_secret_arn = var.genesys_client_secret_secret_arn
      schedule_expression      = var.schedule_expression
    }
  }
  secret_arns = flatten([for o in local.orgs : [o.client_id_secret_arn, o.client_secret_secret_arn]])
}

# ---- Storage -------------------------------------------------------------------------------

resource "aws_kms_key" "archive" {
  description         = "${var.name} archive encryption"
  enable_key_rotation = true
  lifecycle {
    # Destroying the key makes every archive unreadable.
    prevent_destroy = true
  }
}

resource "aws_s3_bucket" "archive" {
  bucket = var.bucket_name
  # Always on: changing this attribute replaces the bucket (and its archives). Whether objects are
  # locked is decided by the retention configuration below (`object_lock_days`).
  object_lock_enabled = true
  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "archive" {
  bucket = aws_s3_bucket.archive.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.archive.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "archive" {
  bucket                  = aws_s3_bucket.archive.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "archive" {
  bucket = aws_s3_bucket.archive.id
  rule {
    id     = "retention"
    status = "Enabled"
    filter {
      prefix = "${var.prefix}/"
    }
    expiration {
      days = var.retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.retention_days
    }
  }
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    # flowvault aborts its multipart uploads on failure; this catches a killed task.
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_object_lock_configuration" "archive" {
  count  = var.object_lock_days > 0 ? 1 : 0
  bucket = aws_s3_bucket.archive.id
  rule {
    default_retention {
      mode = "GOVERNANCE"
      days = var.object_lock_days
    }
  }
}

# ---- The job's permissions: only the calls flowvault makes, only on its prefix --------------

# The policy is a template the test suite evaluates against every S3 call flowvault makes.
locals {
  job_policy = templatefile("${path.module}/job-policy.json.tftpl", {
    bucket_arn  = aws_s3_bucket.archive.arn
    prefix      = var.prefix
    kms_key_arn = aws_kms_key.archive.arn
  })
}

resource "aws_iam_policy" "job" {
  name   = "${var.name}-job"
  policy = local.job_policy
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "task" {
  role       = aws_iam_role.task.name
  policy_arn = aws_iam_policy.job.arn
}

# ---- IRSA: the same policy for the Kubernetes CronJob on EKS ------------------------------------

data "aws_iam_policy_document" "irsa_assume" {
  count = var.eks_oidc_provider_arn == "" ? 0 : 1
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }
    # The ServiceAccount, and its per-org copies (infra/k8s/orgs names them SA-ORG).
    condition {
      test     = "StringLike"
      variable = "${replace(var.eks_oidc_provider_arn, "/^.*oidc-provider\\//", "")}:sub"
      values = [
        "system:serviceaccount:${var.k8s_namespace}:${var.k8s_service_account}",
        "system:serviceaccount:${var.k8s_namespace}:${var.k8s_service_account}-*",
      ]
    }
    condition {
      test     = "StringEquals"
      variable = "${replace(var.eks_oidc_provider_arn, "/^.*oidc-provider\\//", "")}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "irsa" {
  count              = var.eks_oidc_provider_arn == "" ? 0 : 1
  name               = "${var.name}-irsa"
  assume_role_policy = data.aws_iam_policy_document.irsa_assume[0].json
}

resource "aws_iam_role_policy_attachment" "irsa" {
  count      = var.eks_oidc_provider_arn == "" ? 0 : 1
  role       = aws_iam_role.irsa[0].name
  policy_arn = aws_iam_policy.job.arn
}

# ---- ECS Fargate task --------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = var.name
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_cloudwatch_log_group" "job" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  statement {
    actions = ["secretsmanager:GetSecretValue"]
    # A secret's ARN ends in a random six-character suffix: match it whether or not it was given.
    resources = flatten([for arn in local.secret_arns : [arn, "${arn}-??????"]])
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
  for_each                 = local.orgs
  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = 256
  memory                   = 512
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
  # Writable scratch under a read-only root: spooled manifest rows, and the previous tar.gz
  # unpacked for --since (Fargate's task storage).
  volume {
    name = "tmp"
  }
  container_definitions = templatefile("${path.module}/container-definitions.json.tftpl", {
    image                = var.image
    genesys_region       = var.genesys_region
    expected_org         = each.value.genesys_org
    destination          = "s3://${aws_s3_bucket.archive.bucket}/${var.prefix}/${each.key}"
    kms_key_arn          = aws_kms_key.archive.arn
    aws_region           = var.region
    client_id_secret     = each.value.client_id_secret_arn
    client_secret_secret = each.value.client_secret_secret_arn
    log_group            = aws_cloudwatch_log_group.job.name
  })
}

# ---- Nightly schedule --------------------------------------------------------------------------

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
      values   = [data.aws_caller_identity.current.account_id]
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
    resources = [aws_iam_role.task.arn, aws_iam_role.execution.arn]
  }
}

resource "aws_iam_role_policy" "scheduler_run_task" {
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler_run_task.json
}

resource "aws_scheduler_schedule" "nightly" {
  for_each                     = local.orgs
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
    # A failed task is not retried by the scheduler: a run that exits non-zero alerts (below),
    # and retrying exit 2 (settings) or 124 (overran) cannot help.
    retry_policy {
      maximum_retry_attempts = 0
    }
  }
}

# ---- Alerting: a stopped task with a non-zero exit goes to an SNS topic ------------------------

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alert_email == "" ? 0 : 1
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

resource "aws_cloudwatch_event_rule" "failed_run" {
  name        = "${var.name}-failed-run"
  description = "A flowvault task stopped with a non-zero exit code (1 fatal, 2 settings, 3 incomplete, 124 overran)."
  event_pattern = jsonencode({
    source      = ["aws.ecs"]
    detail-type = ["ECS Task State Change"]
    detail = {
      clusterArn = [aws_ecs_cluster.this.arn]
      lastStatus = ["STOPPED"]
      containers = {
        name     = ["flowvault"]
        exitCode = [{ "anything-but" = 0 }]
      }
    }
  })
}

resource "aws_cloudwatch_event_target" "failed_run" {
  rule = aws_cloudwatch_event_rule.failed_run.name
  arn  = aws_sns_topic.alerts.arn
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
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}
