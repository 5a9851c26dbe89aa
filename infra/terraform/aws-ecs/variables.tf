variable "orgs" {
  description = "One task and schedule per org key: runs under PREFIX/KEY with its own role, secrets (ARNs, or ECS references ARN:json-key::) and --expect-org (genesys_org: id or short name)."
  type = map(object({
    genesys_org              = string
    client_id_secret_arn     = string
    client_secret_secret_arn = string
    schedule_expression      = optional(string, "cron(17 2 * * ? *)")
  }))
  validation {
    condition     = length(var.orgs) > 0
    error_message = "orgs needs at least one org."
  }
}

variable "image" {
  description = "flowvault image pinned by digest (REPOSITORY@sha256:…), built for cpu_architecture."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest: REPOSITORY@sha256:<64 hex digits> (docker buildx imagetools inspect shows it)."
  }
}

variable "cpu_architecture" {
  description = "X86_64 (build with docker buildx build --platform linux/amd64) or ARM64 (--platform linux/arm64)."
  type        = string
  default     = "X86_64"
}

variable "genesys_region" {
  description = "Genesys Cloud region (domain or AWS-style name), e.g. usw2.pure.cloud."
  type        = string
  default     = "us-west-2"
}

variable "subnet_ids" {
  description = "Subnets for the Fargate task: private subnets with a NAT gateway (Genesys Cloud is reached over the internet)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups for the Fargate task (egress to HTTPS only is enough)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the task a public IP (only for public subnets without NAT)."
  type        = bool
  default     = false
}

variable "secrets_kms_key_arn" {
  description = "The customer-managed KMS key the Genesys secrets are encrypted with, if any (decrypted only through Secrets Manager)."
  type        = string
  default     = ""
}

variable "alert_email" {
  description = "An address subscribed to the alert topic (confirm the subscription email); empty for none."
  type        = string
  default     = ""
}

variable "log_retention_days" {
  description = "Days the job's logs are kept in CloudWatch."
  type        = number
  default     = 365
}
