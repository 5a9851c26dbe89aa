variable "region" {
  description = "AWS region for the bucket and the ECS task."
  type        = string
  default     = "us-west-2"
}

variable "name" {
  description = "Name prefix for every resource."
  type        = string
  default     = "flowvault"
}

variable "bucket_name" {
  description = "S3 bucket that receives the archives (globally unique)."
  type        = string
}

variable "prefix" {
  description = "Key prefix under which runs are written (the job may write only there)."
  type        = string
  default     = "genesys/prod"
}

variable "retention_days" {
  description = "Days a run's objects are kept before they expire (noncurrent versions too)."
  type        = number
  default     = 90
}

variable "object_lock_days" {
  description = "If > 0, enable S3 Object Lock (governance mode) for this many days: archives cannot be deleted early."
  type        = number
  default     = 0
}

variable "image" {
  description = "flowvault container image."
  type        = string
  default     = "ghcr.io/flowvault/flowvault:0.1.0"
}

variable "genesys_org" {
  description = "The Genesys Cloud org to back up, by id or short name (thirdPartyOrgName); the job refuses any other org (FLOWVAULT_EXPECT_ORG)."
  type        = string
}

variable "genesys_region" {
  description = "Genesys Cloud region (domain or AWS-style name), e.g. usw2.pure.cloud."
  type        = string
  default     = "us-west-2"
}

variable "genesys_client_id_secret_arn" {
  description = "Secrets Manager ARN holding the Genesys OAuth client id."
  type        = string
}

variable "genesys_client_secret_secret_arn" {
  description = "Secrets Manager ARN holding the Genesys OAuth client secret."
  type        = string
}

variable "schedule_expression" {
  description = "EventBridge Scheduler expression for the nightly run."
  type        = string
  default     = "cron(17 2 * * ? *)"
}

variable "subnet_ids" {
  description = "Subnets for the Fargate task (private subnets with a NAT or VPC endpoints)."
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
