output "bucket" {
  description = "The archive bucket."
  value       = aws_s3_bucket.archive.bucket
}

output "destinations" {
  description = "The --to / FLOWVAULT_TO value of each org's job (runs go under PREFIX/ORG_KEY)."
  value       = { for k, _ in local.orgs : k => "s3://${aws_s3_bucket.archive.bucket}/${var.prefix}/${k}" }
}

output "task_role_arn" {
  description = "The ECS task role with the job's S3 permissions."
  value       = aws_iam_role.task.arn
}

output "job_policy_arn" {
  description = "The least-privilege policy; attach it to an IRSA role for the Kubernetes CronJob."
  value       = aws_iam_policy.job.arn
}

output "task_definition_arns" {
  description = "The Fargate task definitions, by org key."
  value       = { for k, td in aws_ecs_task_definition.job : k => td.arn }
}

output "irsa_role_arn" {
  description = "The IRSA role for the Kubernetes CronJob's ServiceAccount (eks.amazonaws.com/role-arn), when eks_oidc_provider_arn is set."
  value       = one(aws_iam_role.irsa[*].arn)
}

output "kms_key_arn" {
  description = "The archive key: FLOWVAULT_SSE_KMS_KEY_ID for a CronJob outside this Terraform."
  value       = aws_kms_key.archive.arn
}

output "alerts_topic_arn" {
  description = "SNS topic that receives failed-run alerts."
  value       = aws_sns_topic.alerts.arn
}

output "log_group" {
  description = "CloudWatch log group of the job (JSON lines)."
  value       = aws_cloudwatch_log_group.job.name
}
