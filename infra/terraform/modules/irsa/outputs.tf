output "role_arns" {
  description = "Each org's IRSA role (the ServiceAccount's eks.amazonaws.com/role-arn), by org key."
  value       = { for k, r in aws_iam_role.org : k => r.arn }
}

output "trust_policies" {
  description = "Each org's trust policy document, by org key (checked by terraform test)."
  value       = { for k, r in aws_iam_role.org : k => r.assume_role_policy }
}
