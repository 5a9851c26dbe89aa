# Secrets Manager references as ECS accepts them (`arn:…:secret:NAME-AbCdEf:client_id::`, a JSON
# key and version after the ARN) reduced to the secret itself, for IAM resource lists: IAM matches
# the secret's ARN, never the reference. Pure (no provider), so the test suite evaluates it.

terraform {
  required_version = ">= 1.5"
}

variable "references" {
  description = "Secret ARNs or ECS `valueFrom` references (ARN:json-key:version-stage:version-id)."
  type        = list(string)
}

locals {
  # arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME, then anything ECS appends.
  secret_arns = distinct([
    for r in var.references : regex("^(arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:[^:]+)", r)[0]
  ])
}

output "resources" {
  description = "Each secret, with and without Secrets Manager's six-character suffix (IAM patterns)."
  value       = flatten([for a in local.secret_arns : [a, "${a}-??????"]])
}
