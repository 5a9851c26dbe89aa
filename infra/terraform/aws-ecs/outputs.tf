output "bucket" {
  description = "The archive bucket."
  value       = module.archive.bucket
}

output "destinations" {
  description = "Each org's --to (runs go under PREFIX/KEY), by org key."
  value       = module.archive.destinations
}

output "task_definition_arns" {
  description = "The Fargate task definitions, by org key."
  value       = module.ecs.task_definition_arns
}

output "cluster_arn" {
  description = "The ECS cluster (for aws ecs run-task: the first run, doctor)."
  value       = module.ecs.cluster_arn
}

output "kms_key_arn" {
  description = "The archive key."
  value       = module.archive.kms_key_arn
}

output "alerts_topic_arn" {
  description = "SNS topic that receives the alerts."
  value       = module.ecs.alerts_topic_arn
}

output "log_groups" {
  description = "CloudWatch log group of each org's job (JSON lines)."
  value       = module.ecs.log_groups
}
