# The archive's settings (the same in both roots: infra/terraform/aws-ecs and aws-eks).

variable "region" {
  description = "AWS region of the bucket (and of the tasks, on ECS)."
  type        = string
  default     = "us-west-2"
}

variable "name" {
  description = "Name prefix for every resource (org KEY's role is NAME-KEY…)."
  type        = string
  default     = "flowvault"
}

variable "bucket_name" {
  description = "S3 bucket that receives the archives (globally unique)."
  type        = string
}

variable "prefix" {
  description = "Key prefix of every org's runs: org KEY writes under PREFIX/KEY/ and may touch nothing else."
  type        = string
  default     = "genesys"
}

variable "retention_days" {
  description = "Days a run stays current; it is gone (noncurrent version and delete marker too) one day later."
  type        = number
  default     = 90
}

variable "object_lock_days" {
  description = "If > 0, enable S3 Object Lock (governance mode) for this many days: archives cannot be deleted early."
  type        = number
  default     = 0
}
