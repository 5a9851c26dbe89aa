output "bucket" {
  description = "The archive bucket's name."
  value       = aws_s3_bucket.archive.bucket
}

output "bucket_arn" {
  description = "The archive bucket's ARN."
  value       = aws_s3_bucket.archive.arn
}

output "kms_key_arn" {
  description = "The archive key (FLOWVAULT_SSE_KMS_KEY_ID)."
  value       = aws_kms_key.archive.arn
}

output "job_policy_arns" {
  description = "Each org's least-privilege policy, by org key."
  value       = { for k, p in aws_iam_policy.job : k => p.arn }
}

output "destinations" {
  description = "Each org's --to / FLOWVAULT_TO, by org key."
  value       = { for k in var.orgs : k => "s3://${aws_s3_bucket.archive.bucket}/${var.prefix}/${k}" }
}

output "job_policies" {
  description = "Each org's policy document, by org key (checked by terraform test)."
  value       = { for k, p in aws_iam_policy.job : k => p.policy }
}
