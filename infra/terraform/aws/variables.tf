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
  description = "Subnets for the Fargate task: private subnets with a NAT gateway (Genesys Cloud is reached over the internet; VPC endpoints for S3, ECR, Logs and Secrets Manager help but do not replace the NAT)."
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

variable "orgs" {
  description = "Many orgs (a partner backing up its customers): one task and schedule per entry, runs under PREFIX/KEY, each with its own secrets and --expect-org. Empty: the single org of genesys_org and the secret ARN variables."
  type = map(object({
    genesys_org              = string
    client_id_secret_arn     = string
    client_secret_secret_arn = string
    schedule_expression      = string
  }))
  default = {}
}

variable "secrets_kms_key_arn" {
  description = "The customer-managed KMS key the Genesys secrets are encrypted with, if any (the execution role gets kms:Decrypt on it via Secrets Manager)."
  type        = string
  default     = ""
}

variable "eks_oidc_provider_arn" {
  description = "The EKS cluster's IAM OIDC provider ARN; when set, an IRSA role with the job's policy is created for the CronJob's ServiceAccount."
  type        = string
  default     = ""
}

variable "k8s_namespace" {
  description = "Namespace of the CronJob's ServiceAccount (IRSA)."
  type        = string
  default     = "flowvault"
}

variable "k8s_service_account" {
  description = "Name of the CronJob's ServiceAccount (IRSA)."
  type        = string
  default     = "flowvault"
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
