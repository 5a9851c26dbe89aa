output "task_definition_arns" {
  description = "The Fargate task definitions, by org key."
  value       = { for k, td in aws_ecs_task_definition.job : k => td.arn }
}

output "task_role_arns" {
  description = "Each org's task role, by org key."
  value       = { for k, r in aws_iam_role.task : k => r.arn }
}

output "cluster_arn" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "alerts_topic_arn" {
  description = "SNS topic that receives failed-run, missed-schedule and staleness alerts."
  value       = aws_sns_topic.alerts.arn
}

output "log_groups" {
  description = "CloudWatch log group of each org's job (JSON lines), by org key."
  value       = { for k, g in aws_cloudwatch_log_group.job : k => g.name }
}

output "undelivered_queue_url" {
  description = "Dead-letter queue of schedules and alerts that could not be delivered."
  value       = aws_sqs_queue.undelivered.id
}

output "execution_secret_resources" {
  description = "The secrets the execution role may read (IAM patterns), checked by terraform test."
  value       = module.secret_arns.resources
}

output "alerts_key_arn" {
  description = "The customer-managed key of the alert topic."
  value       = aws_sns_topic.alerts.kms_master_key_id
}
