variable "name" {
  description = "Name prefix for every resource."
  type        = string
}

variable "region" {
  description = "AWS region of the tasks."
  type        = string
}

variable "bucket" {
  description = "The archive bucket (the archive module's bucket)."
  type        = string
}

variable "prefix" {
  description = "Key prefix of every org's runs (org KEY writes under PREFIX/KEY)."
  type        = string
}

variable "kms_key_arn" {
  description = "The archive key (the archive module's kms_key_arn)."
  type        = string
}

variable "job_policy_arns" {
  description = "Each org's policy (the archive module's job_policy_arns)."
  type        = map(string)
}

variable "orgs" {
  description = "One task and schedule per entry: runs under PREFIX/KEY, its own secrets, role and --expect-org."
  type = map(object({
    genesys_org              = string
    client_id_secret_arn     = string
    client_secret_secret_arn = string
    schedule_expression      = string
  }))
}

variable "image" {
  description = "flowvault image pinned by digest (REPO@sha256:…), built for cpu_architecture."
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "image must be pinned by digest: REPOSITORY@sha256:<64 hex digits>."
  }
}

variable "cpu_architecture" {
  description = "Fargate CPU architecture: X86_64 (image built with --platform linux/amd64) or ARM64 (linux/arm64)."
  type        = string
  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture is X86_64 or ARM64."
  }
}

variable "genesys_region" {
  description = "Genesys Cloud region (domain or AWS-style name), e.g. usw2.pure.cloud."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets for the Fargate tasks: private subnets with a NAT gateway."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups for the Fargate tasks (egress to HTTPS only is enough)."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the task a public IP (only for public subnets without NAT)."
  type        = bool
}

variable "secrets_kms_key_arn" {
  description = "The customer-managed KMS key the Genesys secrets are encrypted with, if any."
  type        = string
}

variable "alert_email" {
  description = "An address subscribed to the alert topic; empty for none."
  type        = string
}

variable "log_retention_days" {
  description = "Days the job's logs are kept in CloudWatch."
  type        = number
}
