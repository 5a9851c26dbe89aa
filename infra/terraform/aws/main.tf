# An S3 bucket for flowvault archives, a least-privilege role for the job, and a Fargate task
# that EventBridge Scheduler runs nightly. Secrets come from Secrets Manager.

data "aws_caller_identity" "current" {}

locals {
  prefix_arn = "${aws_s3_bucket.archive.arn}/${var.prefix}/*"
}

# ---- Storage -------------------------------------------------------------------------------

resource "aws_kms_key" "archive" {
  description         = "${var.name} archive encryption"
  enable_key_rotation = true
}

resource "aws_s3_bucket" "archive" {
  bucket              = var.bucket_name
  object_lock_enabled = var.object_lock_days > 0
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

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "CheckBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.archive.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.prefix}/*"]
    }
  }
  statement {
    sid = "WriteRuns"
    # PutObject covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload;
    # GetObject lets HeadObject tell "no run here yet" from "access denied".
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject"]
    resources = [local.prefix_arn]
  }
  statement {
    sid       = "EncryptWithTheArchiveKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.archive.arn]
  }
}

resource "aws_iam_policy" "job" {
  name   = "${var.name}-job"
  policy = data.aws_iam_policy_document.job.json
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

# ---- ECS Fargate task --------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = var.name
}

resource "aws_cloudwatch_log_group" "job" {
  name              = "/ecs/${var.name}"
  retention_in_days = 30
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
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.genesys_client_id_secret_arn, var.genesys_client_secret_secret_arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}

resource "aws_ecs_task_definition" "job" {
  family                   = var.name
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
  container_definitions = templatefile("${path.module}/container-definitions.json.tftpl", {
    image                = var.image
    genesys_region       = var.genesys_region
    expected_org         = var.genesys_org
    destination          = "s3://${aws_s3_bucket.archive.bucket}/${var.prefix}"
    aws_region           = var.region
    client_id_secret     = var.genesys_client_id_secret_arn
    client_secret_secret = var.genesys_client_secret_secret_arn
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
    resources = [aws_ecs_task_definition.job.arn_without_revision, "${aws_ecs_task_definition.job.arn_without_revision}:*"]
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
  name                         = "${var.name}-nightly"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = "Etc/UTC"
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.scheduler.arn
    ecs_parameters {
      task_definition_arn = aws_ecs_task_definition.job.arn_without_revision
      launch_type         = "FARGATE"
      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = var.security_group_ids
        assign_public_ip = var.assign_public_ip
      }
    }
    retry_policy {
      maximum_retry_attempts = 2
    }
  }
}
