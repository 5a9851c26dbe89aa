variable "name" {
  description = "Name prefix for every resource."
  type        = string
}

variable "region" {
  description = "AWS region of the bucket (the job's KMS use is allowed only through S3 there)."
  type        = string
}

variable "bucket_name" {
  description = "S3 bucket that receives the archives (globally unique)."
  type        = string
}

variable "prefix" {
  description = "Key prefix of every org's runs: org KEY writes only under PREFIX/KEY/."
  type        = string
  validation {
    condition     = !endswith(var.prefix, "/") && !startswith(var.prefix, "/") && var.prefix != ""
    error_message = "prefix is a key prefix without leading or trailing slash, e.g. genesys."
  }
}

variable "orgs" {
  description = "The org keys: each gets its own least-privilege policy on PREFIX/KEY/*."
  type        = set(string)
  validation {
    condition     = alltrue([for k in var.orgs : can(regex("^[a-z0-9][a-z0-9-]*$", k))])
    error_message = "org keys are lowercase letters, digits and dashes (they name roles and key prefixes)."
  }
}

variable "retention_days" {
  description = "Days a run stays current; its noncurrent versions go one day later and the delete markers after them, so a run lives retention_days + 1 days."
  type        = number
}

variable "object_lock_days" {
  description = "If > 0, S3 Object Lock (governance mode) for this many days: archives cannot be deleted early."
  type        = number
}
