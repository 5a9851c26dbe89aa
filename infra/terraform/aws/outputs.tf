output "bucket" {
  description = "The archive bucket."
  value       = aws_s3_bucket.archive.bucket
}

output "destination" {
  description = "The --to / FLOWVAULT_TO value the job uses."
  value       = "s3://${aws_s3_bucket.archive.bucket}/${var.prefix}"
}

output "task_role_arn" {
  description = "Role with the job's S3 permissions (also usable for IRSA with a matching trust policy)."
  value       = aws_iam_role.task.arn
}

output "job_policy_arn" {
  description = "The least-privilege policy; attach it to an IRSA role for the Kubernetes CronJob."
  value       = aws_iam_policy.job.arn
}

output "task_definition_arn" {
  description = "The Fargate task definition."
  value       = aws_ecs_task_definition.job.arn
}

output "log_group" {
  description = "CloudWatch log group of the job (JSON lines)."
  value       = aws_cloudwatch_log_group.job.name
}
