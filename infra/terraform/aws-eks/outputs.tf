output "bucket" {
  description = "The archive bucket."
  value       = module.archive.bucket
}

output "destinations" {
  description = "Each org's FLOWVAULT_TO (runs go under PREFIX/KEY), by org key."
  value       = module.archive.destinations
}

output "irsa_role_arns" {
  description = "Each org's IRSA role: the eks.amazonaws.com/role-arn annotation of its ServiceAccount, by org key."
  value       = module.irsa.role_arns
}

output "kms_key_arn" {
  description = "The archive key: FLOWVAULT_SSE_KMS_KEY_ID of every CronJob."
  value       = module.archive.kms_key_arn
}
